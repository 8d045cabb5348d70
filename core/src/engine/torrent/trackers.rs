//! A torrent's trackers: when to announce and scrape (its [`TrackerList`]), and the HTTP and
//! UDP exchanges in flight, emitted as [`TrackerJob`]s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use rand_chacha::ChaCha8Rng;

use crate::engine::event::Event;
use crate::engine::outbox::Outbox;
use crate::engine::output::{Output, UdpIo};
use crate::tracker::{
    announce_url, parse_announce, parse_scrape, parse_udp_url, scrape_request_url, AnnounceEvent, AnnounceParams,
    AnnounceResponse, TrackerError, TrackerIndex, TrackerList, TrackerStatus, TransportError, UdpConfig, UdpExchange,
    UdpOutcome,
};
use crate::types::{ExchangeId, InfoHash, Instant, JobId, TorrentId};

/// A UDP tracker exchange in flight.
struct UdpRequest {
    tracker: TrackerIndex,
    url: String,
    host: String,
    port: u16,
    exchange: UdpExchange,
}

/// An announce the tracker list wants now; the torrent fills in its [`AnnounceParams`].
pub(crate) struct DueAnnounce {
    tracker: TrackerIndex,
    url: String,
    /// Which event it announces.
    pub event: AnnounceEvent,
    /// The id the tracker gave us in an earlier answer, to send back.
    pub tracker_id: Option<String>,
}

/// The trackers of one torrent and its exchanges with them. Methods that may finish an
/// announce return the peer addresses it brought.
pub(crate) struct TrackerDriver {
    torrent: TorrentId,
    list: TrackerList,
    /// Sent with every announce, so trackers know us across address changes.
    key: u32,
    /// HTTP announces in flight.
    http: HashMap<JobId, (TrackerIndex, String)>,
    /// HTTP scrapes in flight.
    scrapes: HashMap<JobId, TrackerIndex>,
    /// UDP exchanges (announces and scrapes) in flight, each on its own socket.
    udp: BTreeMap<JobId, UdpRequest>,
}

impl TrackerDriver {
    /// The driver of `torrent`'s `list`.
    pub(super) fn new(torrent: TorrentId, list: TrackerList, key: u32) -> TrackerDriver {
        TrackerDriver { torrent, list, key, http: HashMap::new(), scrapes: HashMap::new(), udp: BTreeMap::new() }
    }

    /// The key announces carry.
    pub(super) fn key(&self) -> u32 {
        self.key
    }

    /// The torrent started: announce `started`.
    pub(super) fn start(&mut self, now: Instant) {
        self.list.start(now);
    }

    /// The torrent stopped: announce `stopped`.
    pub(super) fn stop(&mut self, now: Instant) {
        self.list.stop(now);
    }

    /// Announce again as soon as each tracker's `min interval` allows.
    pub(super) fn force_reannounce(&mut self, now: Instant) {
        self.list.force_reannounce(now);
    }

    /// The torrent completed: announce `completed`.
    pub(super) fn completed(&mut self, now: Instant) {
        self.list.completed(now);
    }

    /// Each tracker's state, for the torrent's stats.
    pub(super) fn statuses(&self) -> Vec<TrackerStatus> {
        self.list.statuses()
    }

    /// No exchange in flight and every `stopped` sent (or given up on).
    pub(super) fn is_idle(&self) -> bool {
        self.http.is_empty() && self.scrapes.is_empty() && self.udp.is_empty() && self.list.is_stopped_done()
    }

    /// Gives up on every exchange (trackers that never answered `stopped`) and forgets the list.
    pub(super) fn give_up(&mut self, out: &mut Outbox) {
        self.http.clear();
        self.scrapes.clear();
        for (id, _) in std::mem::take(&mut self.udp) {
            out.forget_job(id);
            out.push(Output::Udp(UdpIo::EndExchange { exchange: ExchangeId::of(id) }));
        }
        self.list = TrackerList::new(Vec::new(), 0);
    }

    /// The next announce due at `now`, if any.
    pub(super) fn next_announce(&mut self, now: Instant) -> Option<DueAnnounce> {
        let (tracker, url, event) = self.list.poll_announce(now)?;
        let tracker_id = self.list.tracker_id(tracker).map(String::from);
        Some(DueAnnounce { tracker, url, event, tracker_id })
    }

    /// Sends `due` with `params` over HTTP or UDP, as its URL says.
    pub(super) fn announce(
        &mut self,
        due: DueAnnounce,
        params: AnnounceParams,
        now: Instant,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) -> Vec<SocketAddr> {
        let DueAnnounce { tracker, url, .. } = due;
        if url.starts_with("http://") || url.starts_with("https://") {
            let id = out.job(self.torrent);
            self.http.insert(id, (tracker, url.clone()));
            out.push(Output::Http { id, url: announce_url(&url, &params) });
        } else {
            match parse_udp_url(&url) {
                Ok((host, port)) => {
                    let id = out.job(self.torrent);
                    let mut exchange = UdpExchange::announce(params, now, rng, &UdpConfig::default());
                    // Peers come back as 18-byte entries from a tracker reached over IPv6.
                    exchange.set_ipv6(host.parse::<std::net::Ipv6Addr>().is_ok());
                    self.udp.insert(id, UdpRequest { tracker, url, host, port, exchange });
                    return self.pump_udp(id, now, out);
                }
                Err(e) => self.list.on_error(tracker, now, TrackerError::UnusableUrl(Box::new(e))),
            }
        }
        Vec::new()
    }

    /// Sends what a UDP exchange has to send, and ends it when it has its result.
    fn pump_udp(&mut self, id: JobId, now: Instant, out: &mut Outbox) -> Vec<SocketAddr> {
        let Some(req) = self.udp.get_mut(&id) else { return Vec::new() };
        while let Some(data) = req.exchange.poll_transmit() {
            out.push(Output::Udp(UdpIo::Exchange {
                exchange: ExchangeId::of(id),
                host: req.host.clone(),
                port: req.port,
                data,
            }));
        }
        let Some(result) = req.exchange.result() else { return Vec::new() };
        let Some(req) = self.udp.remove(&id) else { return Vec::new() };
        out.forget_job(id);
        out.push(Output::Udp(UdpIo::EndExchange { exchange: ExchangeId::of(id) }));
        match result {
            Ok(UdpOutcome::Announce(resp)) => self.on_announce(req.tracker, req.url, resp, now, out),
            Ok(UdpOutcome::Scrape(stats)) => {
                self.list.on_scrape(req.tracker, &stats);
                Vec::new()
            }
            Err(e) => {
                self.on_error(req.tracker, req.url, e, now, out);
                Vec::new()
            }
        }
    }

    /// Asks every tracker for the swarm's seeder and leecher counts.
    pub(super) fn scrape(
        &mut self,
        info_hash: InfoHash,
        now: Instant,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) -> Vec<SocketAddr> {
        let mut peers = Vec::new();
        for (tracker, url) in self.list.scrape_targets() {
            if let Ok((host, port)) = parse_udp_url(&url) {
                let id = out.job(self.torrent);
                let mut exchange = UdpExchange::scrape(info_hash, now, rng, &UdpConfig::default());
                exchange.set_ipv6(host.parse::<std::net::Ipv6Addr>().is_ok());
                self.udp.insert(id, UdpRequest { tracker, url, host, port, exchange });
                peers.extend(self.pump_udp(id, now, out));
            } else if let Some(url) = scrape_request_url(&url, &info_hash) {
                let id = out.job(self.torrent);
                self.scrapes.insert(id, tracker);
                out.push(Output::Http { id, url });
            }
        }
        peers
    }

    /// An HTTP exchange `job` ended with `result` (the body, or why there is none).
    pub(super) fn on_http(
        &mut self,
        job: JobId,
        result: Result<Vec<u8>, TransportError>,
        info_hash: &InfoHash,
        now: Instant,
        out: &mut Outbox,
    ) -> Vec<SocketAddr> {
        if let Some(tracker) = self.scrapes.remove(&job) {
            if let Ok(stats) = result.map_err(|_| ()).and_then(|b| parse_scrape(&b, info_hash).map_err(|_| ())) {
                self.list.on_scrape(tracker, &stats);
            }
            return Vec::new();
        }
        let Some((tracker, url)) = self.http.remove(&job) else { return Vec::new() };
        match result.map_err(TrackerError::from).and_then(|body| parse_announce(&body)) {
            Ok(resp) => self.on_announce(tracker, url, resp, now, out),
            Err(e) => {
                self.on_error(tracker, url, e, now, out);
                Vec::new()
            }
        }
    }

    /// A datagram (or a socket error) for UDP exchange `job`.
    pub(super) fn on_udp(
        &mut self,
        job: JobId,
        result: Result<&[u8], TransportError>,
        now: Instant,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) -> Vec<SocketAddr> {
        let Some(req) = self.udp.get_mut(&job) else { return Vec::new() };
        match result {
            Ok(data) => {
                req.exchange.handle_datagram(now, data, rng);
                self.pump_udp(job, now, out)
            }
            Err(e) => {
                let Some(req) = self.udp.remove(&job) else { return Vec::new() };
                out.forget_job(job);
                out.push(Output::Udp(UdpIo::EndExchange { exchange: ExchangeId::of(job) }));
                self.on_error(req.tracker, req.url, e.into(), now, out);
                Vec::new()
            }
        }
    }

    /// Retransmits (or gives up on) UDP exchanges whose timer is due.
    pub(super) fn on_timeout(&mut self, now: Instant, out: &mut Outbox) -> Vec<SocketAddr> {
        let due: Vec<JobId> = self
            .udp
            .iter()
            .filter(|(_, r)| r.exchange.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        let mut peers = Vec::new();
        for id in due {
            if let Some(r) = self.udp.get_mut(&id) {
                r.exchange.handle_timeout(now);
            }
            peers.extend(self.pump_udp(id, now, out));
        }
        peers
    }

    /// When it next wants [`TrackerDriver::on_timeout`] or an announce; announces wait while
    /// the torrent is `checking`.
    pub(super) fn deadline(&self, checking: bool) -> Option<Instant> {
        let udp = self.udp.values().filter_map(|r| r.exchange.poll_timeout()).min();
        let next = if checking { None } else { self.list.poll_timeout() };
        match (udp, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The UDP exchanges in flight (each holds a socket).
    pub(super) fn udp_sockets(&self) -> Vec<JobId> {
        self.udp.keys().copied().collect()
    }

    fn on_announce(
        &mut self,
        tracker: TrackerIndex,
        url: String,
        resp: AnnounceResponse,
        now: Instant,
        out: &mut Outbox,
    ) -> Vec<SocketAddr> {
        self.list.on_response(tracker, now, &resp);
        out.event(Event::TrackerReply { torrent: self.torrent, url, peers: resp.peers.len() });
        resp.peers
    }

    fn on_error(&mut self, tracker: TrackerIndex, url: String, error: TrackerError, now: Instant, out: &mut Outbox) {
        self.list.on_error(tracker, now, error.clone());
        out.event(Event::TrackerError { torrent: self.torrent, url, error });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::{DueAnnounce, TrackerDriver};
    use crate::engine::event::Event;
    use crate::engine::outbox::Outbox;
    use crate::engine::output::{Output, UdpIo};
    use crate::tracker::{AnnounceEvent, AnnounceParams, TrackerError, TrackerList, TrackerState, TransportError};
    use crate::types::{ExchangeId, InfoHash, Instant, PeerId, TorrentId};

    fn driver(url: &str) -> TrackerDriver {
        TrackerDriver::new(TorrentId(3), TrackerList::new(vec![vec![url.to_owned()]], 1), 7)
    }

    fn params(due: &DueAnnounce, key: u32) -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            port: 6881,
            ip: None,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: due.event,
            num_want: 50,
            key,
            tracker_id: due.tracker_id.clone(),
            ipv6: None,
        }
    }

    fn outputs(out: &mut Outbox) -> Vec<Output> {
        out.drain()
    }

    fn one_output(out: &mut Outbox) -> Output {
        let mut all = outputs(out);
        assert_eq!(all.len(), 1, "one output expected");
        all.remove(0)
    }

    /// A driver for one UDP tracker that has just sent its `started` announce.
    fn udp_announced() -> (Instant, TrackerDriver, ChaCha8Rng, Outbox) {
        let (now, mut rng, mut out) = (Instant::ZERO, ChaCha8Rng::seed_from_u64(0), Outbox::default());
        let mut trackers = driver("udp://127.0.0.1:6969");
        trackers.start(now);
        let due = trackers.next_announce(now).expect("started is due");
        let p = params(&due, trackers.key());
        trackers.announce(due, p, now, &mut rng, &mut out);
        (now, trackers, rng, out)
    }

    #[test]
    fn an_http_announce_goes_out_as_a_get_and_its_answer_brings_peers() {
        let (now, mut rng, mut out) = (Instant::ZERO, ChaCha8Rng::seed_from_u64(0), Outbox::default());
        let mut trackers = driver("http://tracker.test/announce");
        trackers.start(now);
        let due = trackers.next_announce(now).expect("started is due");
        assert_eq!(due.event, AnnounceEvent::Started);
        let p = params(&due, trackers.key());
        assert!(trackers.announce(due, p, now, &mut rng, &mut out).is_empty());
        let Output::Http { id, url } = one_output(&mut out) else {
            panic!("one HTTP GET expected");
        };
        assert!(url.starts_with("http://tracker.test/announce?") && url.contains("key="), "{url}");
        assert!(trackers.next_announce(now).is_none(), "one announce at a time");
        let mut body = b"d8:intervali1800e5:peers6:".to_vec();
        body.extend([10, 0, 0, 1, 0x1a, 0xe1]);
        body.push(b'e');
        let peers = trackers.on_http(id, Ok(body), &InfoHash([1; 20]), now, &mut out);
        assert_eq!(peers, vec![SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881))]);
        let Output::Event(Event::TrackerReply { torrent, peers: 1, .. }) = one_output(&mut out) else {
            panic!("a tracker reply expected");
        };
        assert_eq!(torrent, TorrentId(3));
        assert!(trackers.on_http(id, Ok(Vec::new()), &InfoHash([1; 20]), now, &mut out).is_empty(), "answered once");
        assert!(outputs(&mut out).is_empty());
    }

    #[test]
    fn a_udp_announce_holds_a_socket_until_it_fails() {
        let (now, mut trackers, mut rng, mut out) = udp_announced();
        let Output::Udp(UdpIo::Exchange { exchange, port: 6969, .. }) = one_output(&mut out) else {
            panic!("one datagram expected");
        };
        let id = exchange.job();
        assert_eq!(trackers.udp_sockets(), vec![id]);
        assert!(trackers.deadline(true).is_some_and(|t| t > now), "a retransmission timer runs while checking");
        let refused = TransportError::Failed("refused".to_owned());
        trackers.on_udp(id, Err(refused.clone()), now, &mut rng, &mut out);
        let sent = outputs(&mut out);
        assert!(matches!(sent[0], Output::Udp(UdpIo::EndExchange { exchange }) if exchange == ExchangeId::of(id)));
        let Output::Event(Event::TrackerError { error, .. }) = &sent[1] else { panic!("a tracker error expected") };
        assert_eq!(*error, TrackerError::Unreachable(refused));
        assert_eq!(error.to_string(), "refused", "the runtime's words, as the status shows them");
        assert!(trackers.udp_sockets().is_empty());
    }

    /// The error of the tracker's event and the text of its status after `result`, for an
    /// HTTP announce.
    fn http_failure(result: Result<Vec<u8>, TransportError>) -> (TrackerError, Option<String>) {
        let (now, mut rng, mut out) = (Instant::ZERO, ChaCha8Rng::seed_from_u64(0), Outbox::default());
        let mut trackers = driver("http://tracker.test/announce");
        trackers.start(now);
        let due = trackers.next_announce(now).expect("started is due");
        let p = params(&due, trackers.key());
        trackers.announce(due, p, now, &mut rng, &mut out);
        let Output::Http { id, .. } = one_output(&mut out) else { panic!("one HTTP GET expected") };
        assert!(trackers.on_http(id, result, &InfoHash([1; 20]), now, &mut out).is_empty());
        let Output::Event(Event::TrackerError { error, .. }) = one_output(&mut out) else {
            panic!("a tracker error expected")
        };
        let status = trackers.statuses().remove(0);
        assert_eq!(status.state, TrackerState::Error(error.clone()), "the status keeps the typed error");
        (error, status.message)
    }

    #[test]
    fn tracker_errors_are_typed_and_read_as_the_messages_they_replace() {
        let not_found = TransportError::HttpStatus { code: 404, reason: "Not Found".into() };
        let (error, message) = http_failure(Err(not_found.clone()));
        assert_eq!(error, TrackerError::Unreachable(not_found));
        assert_eq!(message.as_deref(), Some("HTTP 404 Not Found"));
        let timeout = TransportError::TimedOut("timeout: global".into());
        let (error, message) = http_failure(Err(timeout.clone()));
        assert_eq!(error, TrackerError::Unreachable(timeout));
        assert_eq!(message.as_deref(), Some("timeout: global"));
        let (error, message) = http_failure(Ok(b"d14:failure reason4:nopee".to_vec()));
        assert_eq!(error, TrackerError::Failure("nope".into()));
        assert_eq!(message.as_deref(), Some("tracker refused: nope"));
        let (error, message) = http_failure(Ok(b"not bencode".to_vec()));
        assert!(matches!(error, TrackerError::Malformed(_) | TrackerError::Bencode(_)), "{error:?}");
        assert_eq!(message, Some(error.to_string()));
    }

    #[test]
    fn a_udp_url_without_a_port_fails_as_unsupported_with_its_cause() {
        let (now, mut rng, mut out) = (Instant::ZERO, ChaCha8Rng::seed_from_u64(0), Outbox::default());
        let mut trackers = driver("udp://tracker.test");
        trackers.start(now);
        let due = trackers.next_announce(now).expect("started is due");
        let p = params(&due, trackers.key());
        assert!(trackers.announce(due, p, now, &mut rng, &mut out).is_empty());
        assert!(outputs(&mut out).is_empty(), "nothing sent");
        let status = trackers.statuses().remove(0);
        let cause = TrackerError::InvalidUrl("udp://tracker.test".into());
        assert_eq!(status.state, TrackerState::Error(TrackerError::UnusableUrl(Box::new(cause))));
        assert_eq!(status.message.as_deref(), Some("unsupported tracker URL"));
    }

    #[test]
    fn giving_up_closes_the_sockets() {
        let (_, mut trackers, _, mut out) = udp_announced();
        let id = trackers.udp_sockets()[0];
        outputs(&mut out);
        trackers.give_up(&mut out);
        assert!(
            matches!(outputs(&mut out)[..], [Output::Udp(UdpIo::EndExchange { exchange })] if exchange == ExchangeId::of(id))
        );
        assert!(trackers.is_idle());
    }
}
