//! UDP trackers (BEP 15): one request/response exchange, on top of the packet `codec` ([`Request`], [`Response`]).
//!
//! [`UdpExchange`] runs one announce or scrape: connect, then the request, retransmitting on
//! silence. The runtime resolves the tracker's host ([`parse_udp_url`]), sends what
//! [`UdpExchange::poll_transmit`] returns and feeds back every datagram from that address.

use std::time::Duration;

use rand::Rng;

use super::announce::{clamp_interval, push_peer, AnnounceParams, AnnounceResponse, ScrapeStats, TrackerError};
use crate::types::{InfoHash, Instant};

mod codec;

pub use codec::{parse_udp_url, Request, Response, PROTOCOL_ID};
use codec::{ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE};

/// How long a connection id may be used after it was received (BEP 15: one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// The retransmission exponent stops growing here (BEP 15: 15 * 2^8 = 3840 s).
const MAX_BACKOFF_EXPONENT: u32 = 8;

/// Retransmission settings of [`UdpExchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// The first timeout; attempt `n` (from 0) waits `base_timeout * 2^n` (BEP 15: 15 s).
    pub base_timeout: Duration,
    /// Datagrams sent before giving up, counted over the whole exchange (connect and
    /// request together). The default 4 gives up after 15 + 30 + 60 + 120 = 225 s of silence.
    pub max_attempts: u32,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig { base_timeout: Duration::from_secs(15), max_attempts: 4 }
    }
}

impl UdpConfig {
    /// How long to wait for an answer to attempt `n` (from 0).
    fn timeout(&self, attempt: u32) -> Duration {
        self.base_timeout.saturating_mul(1 << attempt.min(MAX_BACKOFF_EXPONENT))
    }
}

/// What a finished [`UdpExchange`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpOutcome {
    /// The answer to an announce.
    Announce(AnnounceResponse),
    /// The figures from a scrape.
    Scrape(ScrapeStats),
}

/// What the exchange asks the tracker once it has a connection id.
#[derive(Debug, Clone)]
enum Job {
    Announce(AnnounceParams),
    Scrape(InfoHash),
}

/// Where an exchange stands.
#[derive(Debug, Clone)]
enum Phase {
    /// Waiting for a connection id.
    Connecting,
    /// Waiting for the answer to the request, sent with this connection id.
    Requesting { connection_id: u64, obtained_at: Instant },
    /// Done; the result may already have been taken.
    Finished,
}

/// One announce or scrape with one UDP tracker: connect, request, retransmit, give up.
///
/// Drive it like every machine in the core: after creating it and after each `handle_*`,
/// send what [`poll_transmit`](Self::poll_transmit) returns, check
/// [`result`](Self::result), and wake it at [`poll_timeout`](Self::poll_timeout).
/// Datagrams that are too short to carry a transaction id, carry another transaction id, or
/// carry an action we are not waiting for are ignored. A datagram with our transaction id and
/// the expected action but a malformed body ends the exchange with an error: only the tracker
/// knows the id, and opentracker answers a torrent it does not track with a bare 8-byte header,
/// which is not worth four minutes of retransmissions.
#[derive(Debug, Clone)]
pub struct UdpExchange {
    job: Job,
    cfg: UdpConfig,
    ipv6: bool,
    phase: Phase,
    /// Transaction id of the connect request (reused on retransmission and reconnection).
    connect_tid: u32,
    /// Transaction id of the announce or scrape request.
    request_tid: u32,
    /// Timeouts so far in this exchange: the `n` in `base * 2^n`.
    attempt: u32,
    /// When the datagram in flight is considered lost.
    deadline: Option<Instant>,
    transmit: Option<Vec<u8>>,
    result: Option<Result<UdpOutcome, TrackerError>>,
}

impl UdpExchange {
    /// Starts an announce; the connect request is ready in `poll_transmit`.
    pub fn announce(params: AnnounceParams, now: Instant, rng: &mut impl Rng, cfg: &UdpConfig) -> Self {
        Self::new(Job::Announce(params), now, rng, cfg)
    }

    /// Starts a scrape of one torrent; the connect request is ready in `poll_transmit`.
    pub fn scrape(info_hash: InfoHash, now: Instant, rng: &mut impl Rng, cfg: &UdpConfig) -> Self {
        Self::new(Job::Scrape(info_hash), now, rng, cfg)
    }

    fn new(job: Job, now: Instant, rng: &mut impl Rng, cfg: &UdpConfig) -> Self {
        let mut x = UdpExchange {
            job,
            cfg: *cfg,
            ipv6: false,
            phase: Phase::Connecting,
            connect_tid: rng.random(),
            request_tid: rng.random(),
            attempt: 0,
            deadline: None,
            transmit: None,
            result: None,
        };
        if cfg.max_attempts == 0 {
            x.finish(Err(TrackerError::Timeout));
        } else {
            x.send_current(now);
        }
        x
    }

    /// Reuses a connection id obtained from this tracker at `obtained_at`, skipping the
    /// connect step if it is still valid at `now`; otherwise this changes nothing.
    pub fn with_connection(mut self, connection_id: u64, obtained_at: Instant, now: Instant) -> Self {
        if matches!(self.phase, Phase::Connecting) && now < obtained_at + CONNECTION_ID_LIFETIME {
            self.phase = Phase::Requesting { connection_id, obtained_at };
            self.send_current(now);
        }
        self
    }

    /// Tells the exchange the tracker was reached over IPv6 (peers are then 18 bytes each).
    ///
    /// Call it once the tracker's address is resolved, before delivering any datagram.
    pub fn set_ipv6(&mut self, ipv6: bool) {
        self.ipv6 = ipv6;
    }

    /// The connection id in use and when it was obtained, for the caller to cache.
    pub fn connection(&self) -> Option<(u64, Instant)> {
        match self.phase {
            Phase::Requesting { connection_id, obtained_at } => Some((connection_id, obtained_at)),
            _ => None,
        }
    }

    /// Whether the exchange is over (its result may already have been taken).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The datagram to send now, once per request and per retransmission.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The outcome, handed out once when the exchange finishes (later calls return `None`).
    pub fn result(&mut self) -> Option<Result<UdpOutcome, TrackerError>> {
        self.result.take()
    }

    /// Handles the passing of time: retransmits, reconnects, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        self.attempt = self.attempt.saturating_add(1);
        if self.attempt >= self.cfg.max_attempts {
            self.finish(Err(TrackerError::Timeout));
            return;
        }
        // A request must not go out with a connection id the tracker no longer honours.
        if let Phase::Requesting { obtained_at, .. } = self.phase {
            if now >= obtained_at + CONNECTION_ID_LIFETIME {
                self.phase = Phase::Connecting;
            }
        }
        self.send_current(now);
    }

    /// Handles a datagram from the tracker's address.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8], rng: &mut impl Rng) {
        let Some(header) = data.get(..8) else { return };
        let action = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let tid = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let (want_tid, want_action) = match (&self.phase, &self.job) {
            (Phase::Finished, _) => return,
            (Phase::Connecting, _) => (self.connect_tid, ACTION_CONNECT),
            (Phase::Requesting { .. }, Job::Announce(_)) => (self.request_tid, ACTION_ANNOUNCE),
            (Phase::Requesting { .. }, Job::Scrape(_)) => (self.request_tid, ACTION_SCRAPE),
        };
        if tid != want_tid || (action != want_action && action != ACTION_ERROR) {
            return;
        }
        let response = match Response::decode(data, self.ipv6) {
            Ok(r) => r,
            Err(e) => return self.finish(Err(e)),
        };
        match response {
            Response::Error { message, .. } => self.finish(Err(TrackerError::Failure(message))),
            Response::Connect { connection_id, .. } => {
                self.phase = Phase::Requesting { connection_id, obtained_at: now };
                // A fresh id per connection, so an answer to a request made with an older
                // connection id cannot be mistaken for this one.
                self.request_tid = rng.random();
                self.send_current(now);
            }
            Response::Announce { interval, leechers, seeders, peers, .. } => {
                let mut usable = Vec::new();
                for p in peers {
                    push_peer(&mut usable, p);
                }
                self.finish(Ok(UdpOutcome::Announce(AnnounceResponse {
                    interval: clamp_interval(Duration::from_secs(interval.into())),
                    min_interval: None,
                    peers: usable,
                    complete: Some(seeders),
                    incomplete: Some(leechers),
                    tracker_id: None,
                    warning: None,
                })));
            }
            // We scrape one torrent: an answer with more or fewer entries is about something else.
            Response::Scrape { stats, .. } => match stats.as_slice() {
                [s] => self.finish(Ok(UdpOutcome::Scrape(*s))),
                _ => self.finish(Err(TrackerError::Malformed("scrape answer does not have exactly one entry"))),
            },
        }
    }

    /// Queues the datagram for the current phase and arms its timeout.
    fn send_current(&mut self, now: Instant) {
        let datagram = match (&self.phase, &self.job) {
            (Phase::Finished, _) => return,
            (Phase::Connecting, _) => Request::Connect { transaction_id: self.connect_tid }.encode(),
            (Phase::Requesting { connection_id, .. }, Job::Announce(params)) => Request::Announce {
                connection_id: *connection_id,
                transaction_id: self.request_tid,
                params: params.clone(),
            }
            .encode(),
            (Phase::Requesting { connection_id, .. }, Job::Scrape(h)) => Request::Scrape {
                connection_id: *connection_id,
                transaction_id: self.request_tid,
                info_hashes: vec![*h],
            }
            .encode(),
        };
        self.transmit = Some(datagram);
        self.deadline = Some(now + self.cfg.timeout(self.attempt));
    }

    fn finish(&mut self, result: Result<UdpOutcome, TrackerError>) {
        self.phase = Phase::Finished;
        self.deadline = None;
        self.transmit = None;
        self.result = Some(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::AnnounceEvent;
    use crate::types::PeerId;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::net::SocketAddr;

    fn params() -> AnnounceParams {
        AnnounceParams {
            info_hash: InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap(),
            peer_id: PeerId(*b"-SH0001-dddddddddddd"),
            port: 6884,
            ip: None,
            uploaded: 0,
            downloaded: 0,
            left: 100,
            event: AnnounceEvent::Started,
            num_want: u32::MAX,
            key: 0xabcd_ef01,
            tracker_id: None,
            ipv6: None,
        }
    }

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    /// Starts an announce and returns it with its decoded connect request's transaction id.
    fn start(rng: &mut ChaCha8Rng, cfg: &UdpConfig) -> (UdpExchange, u32) {
        let mut x = UdpExchange::announce(params(), secs(0), rng, cfg);
        let dgram = x.poll_transmit().expect("connect is sent at once");
        assert_eq!(x.poll_transmit(), None, "sent once");
        match Request::decode(&dgram).unwrap() {
            Request::Connect { transaction_id } => (x, transaction_id),
            other => panic!("{other:?}"),
        }
    }

    fn connect_reply(tid: u32, cid: u64) -> Vec<u8> {
        Response::Connect { transaction_id: tid, connection_id: cid }.encode()
    }

    #[test]
    fn connect_then_announce_with_a_scripted_tracker() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cfg = UdpConfig::default();
        let (mut x, tid) = start(&mut rng, &cfg);
        assert_eq!(x.poll_timeout(), Some(secs(15)));

        x.handle_datagram(secs(1), &connect_reply(tid, 0xc0ffee), &mut rng);
        assert_eq!(x.connection(), Some((0xc0ffee, secs(1))));
        let dgram = x.poll_transmit().expect("announce follows the connect");
        let Request::Announce { connection_id, transaction_id, params: p } = Request::decode(&dgram).unwrap() else {
            panic!("expected an announce");
        };
        assert_eq!((connection_id, p.event, p.port), (0xc0ffee, AnnounceEvent::Started, 6884));
        assert_eq!(x.poll_timeout(), Some(secs(16)));

        let answer = Response::Announce {
            transaction_id,
            interval: 5,
            leechers: 1,
            seeders: 2,
            peers: vec!["10.0.0.1:6881".parse().unwrap(), "10.0.0.2:0".parse().unwrap()],
        };
        x.handle_datagram(secs(2), &answer.encode(), &mut rng);
        assert!(x.is_finished());
        assert_eq!(x.poll_timeout(), None);
        let Some(Ok(UdpOutcome::Announce(r))) = x.result() else { panic!("expected an answer") };
        assert_eq!(r.peers, vec!["10.0.0.1:6881".parse().unwrap()], "port 0 is dropped");
        assert_eq!(r.interval, super::super::MIN_INTERVAL, "interval is clamped");
        assert_eq!((r.complete, r.incomplete), (Some(2), Some(1)));
        assert_eq!(x.result(), None, "the result is handed out once");
    }

    #[test]
    fn retransmits_at_15_30_60_then_times_out() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let cfg = UdpConfig::default();
        let (mut x, tid) = start(&mut rng, &cfg);
        x.handle_timeout(secs(14));
        assert_eq!(x.poll_transmit(), None, "nothing before the deadline");
        let mut sends = vec![];
        while let Some(deadline) = x.poll_timeout() {
            x.handle_timeout(deadline);
            if let Some(d) = x.poll_transmit() {
                assert_eq!(Request::decode(&d).unwrap(), Request::Connect { transaction_id: tid });
                sends.push(deadline.as_micros() / 1_000_000);
            }
        }
        assert_eq!(sends, vec![15, 45, 105]);
        assert_eq!(x.result(), Some(Err(TrackerError::Timeout)));
    }

    #[test]
    fn base_timeout_and_attempts_are_configurable() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = UdpConfig { base_timeout: Duration::from_secs(2), max_attempts: 2 };
        let (mut x, _) = start(&mut rng, &cfg);
        assert_eq!(x.poll_timeout(), Some(secs(2)));
        x.handle_timeout(secs(2));
        assert!(x.poll_transmit().is_some());
        assert_eq!(x.poll_timeout(), Some(secs(6)));
        x.handle_timeout(secs(6));
        assert_eq!(x.result(), Some(Err(TrackerError::Timeout)));
    }

    #[test]
    fn wrong_transaction_ids_actions_and_short_packets_are_ignored() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut x, tid) = start(&mut rng, &UdpConfig::default());
        x.handle_datagram(secs(1), &connect_reply(tid.wrapping_add(1), 5), &mut rng);
        x.handle_datagram(secs(1), &[0, 0, 0], &mut rng);
        x.handle_datagram(secs(1), &[], &mut rng);
        let error_other_tid = Response::Error { transaction_id: !tid, message: "x".into() };
        x.handle_datagram(secs(1), &error_other_tid.encode(), &mut rng);
        let scrape_answer = Response::Scrape { transaction_id: tid, stats: vec![] };
        x.handle_datagram(secs(1), &scrape_answer.encode(), &mut rng);
        assert!(!x.is_finished());
        assert_eq!(x.poll_transmit(), None);
        assert_eq!(x.connection(), None);
        // The right answer still works afterwards.
        x.handle_datagram(secs(2), &connect_reply(tid, 5), &mut rng);
        assert_eq!(x.connection(), Some((5, secs(2))));
    }

    #[test]
    fn error_action_fails_the_exchange() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut x, tid) = start(&mut rng, &UdpConfig::default());
        let err = Response::Error { transaction_id: tid, message: "torrent not registered".into() };
        x.handle_datagram(secs(1), &err.encode(), &mut rng);
        assert_eq!(x.result(), Some(Err(TrackerError::Failure("torrent not registered".into()))));
        assert_eq!(x.poll_timeout(), None);
    }

    #[test]
    fn bare_header_with_our_transaction_id_fails_fast() {
        // opentracker's answer to an announce for a torrent outside its whitelist.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (mut x, tid) = start(&mut rng, &UdpConfig::default());
        x.handle_datagram(secs(1), &connect_reply(tid, 5), &mut rng);
        let Request::Announce { transaction_id, .. } = Request::decode(&x.poll_transmit().unwrap()).unwrap() else {
            panic!("expected an announce")
        };
        let mut bare = ACTION_ANNOUNCE.to_be_bytes().to_vec();
        bare.extend_from_slice(&transaction_id.to_be_bytes());
        x.handle_datagram(secs(2), &bare, &mut rng);
        assert!(matches!(x.result(), Some(Err(TrackerError::Malformed(_)))));
    }

    #[test]
    fn expired_connection_id_triggers_a_reconnect() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut x, tid) = start(&mut rng, &UdpConfig::default());
        x.handle_datagram(secs(0), &connect_reply(tid, 5), &mut rng);
        assert!(x.poll_transmit().is_some());
        // Announce retransmissions at 15 s and 45 s still use the id (age < 60 s)...
        for t in [15, 45] {
            x.handle_timeout(secs(t));
            let req = Request::decode(&x.poll_transmit().unwrap()).unwrap();
            assert!(matches!(req, Request::Announce { connection_id: 5, .. }));
        }
        // ...but at 105 s it has expired, so we connect again.
        x.handle_timeout(secs(105));
        let req = Request::decode(&x.poll_transmit().unwrap()).unwrap();
        assert_eq!(req, Request::Connect { transaction_id: tid });
    }

    #[test]
    fn cached_connection_skips_the_connect() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let cfg = UdpConfig::default();
        let mut x =
            UdpExchange::scrape(InfoHash([3; 20]), secs(100), &mut rng, &cfg).with_connection(77, secs(50), secs(100));
        let Request::Scrape { connection_id, transaction_id, info_hashes } =
            Request::decode(&x.poll_transmit().unwrap()).unwrap()
        else {
            panic!("expected a scrape");
        };
        assert_eq!((connection_id, info_hashes), (77, vec![InfoHash([3; 20])]));
        let stats = ScrapeStats { complete: 1, incomplete: 2, downloaded: 3 };
        let answer = Response::Scrape { transaction_id, stats: vec![stats] };
        x.handle_datagram(secs(101), &answer.encode(), &mut rng);
        assert_eq!(x.result(), Some(Ok(UdpOutcome::Scrape(stats))));

        // A stale id is not used.
        let mut y =
            UdpExchange::scrape(InfoHash([3; 20]), secs(100), &mut rng, &cfg).with_connection(77, secs(40), secs(100));
        let req = Request::decode(&y.poll_transmit().unwrap()).unwrap();
        assert!(matches!(req, Request::Connect { .. }));
    }

    #[test]
    fn ipv6_hint_selects_18_byte_peers() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut x, tid) = start(&mut rng, &UdpConfig::default());
        x.set_ipv6(true);
        x.handle_datagram(secs(0), &connect_reply(tid, 5), &mut rng);
        let Request::Announce { transaction_id, .. } = Request::decode(&x.poll_transmit().unwrap()).unwrap() else {
            panic!("expected an announce")
        };
        let peer: SocketAddr = "[2001:db8::7]:51413".parse().unwrap();
        let answer = Response::Announce { transaction_id, interval: 1800, leechers: 0, seeders: 1, peers: vec![peer] };
        x.handle_datagram(secs(1), &answer.encode(), &mut rng);
        let Some(Ok(UdpOutcome::Announce(r))) = x.result() else { panic!("expected an answer") };
        assert_eq!(r.peers, vec![peer]);
    }
}
