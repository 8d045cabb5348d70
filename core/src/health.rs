//! Health checks: how many seeders and leechers a torrent has, asked of its trackers for any
//! info-hash (not only a running download's), as a sans-IO machine.
//!
//! A [`HealthCheck`] scrapes every tracker it is given at once (HTTP by BEP 48's scrape
//! convention, UDP by BEP 15), hands out the requests for the runtime to carry
//! ([`HealthCheck::poll_request`]), takes the answers back, and ends when every tracker has
//! answered or failed, or at its deadline. It may also wait for a DHT count (BEP 33, run by
//! the engine's DHT and handed in with [`HealthCheck::handle_dht`]). Its [`HealthReport`]
//! keeps each source's outcome and the best figures over them (the most seeders, then the most
//! leechers: Tribler's aggregation over its trackers and its DHT session).
//!
//! Trackers lie. Every figure passes [`sane`]: a count above [`MAX_FIGURE`] (Tribler reads
//! them as signed 32-bit integers, so such a count is negative to it), a negative or
//! non-integer count, an answer about another torrent, or bencode that does not parse rejects
//! that tracker's answer as a whole. A rejected answer is an error in the report, never a
//! figure.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rand::Rng;

use crate::dht::SwarmCount;
use crate::tracker::scrape_entry;
use crate::tracker::{
    parse_udp_url, scrape_request_url, tracker_kind, ScrapeStats, TrackerError, TrackerKind, UdpConfig, UdpExchange,
    UdpOutcome,
};
use crate::types::{InfoHash, Instant};

/// The largest seeder or leecher count believed: `i32::MAX`. Anything above is a lie (no swarm
/// comes near it) or a negative number written unsigned.
pub const MAX_FIGURE: u32 = i32::MAX as u32;

/// At most this many trackers are asked in one check; the rest of a longer list is ignored.
pub const MAX_TRACKERS_PER_CHECK: usize = 32;

/// Identifies one health check of an [`crate::Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HealthCheckId(pub u64);

/// A swarm's size as one source saw it, within [`MAX_FIGURE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Figures {
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// Peers still downloading.
    pub leechers: u32,
}

/// Where figures came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A tracker, by its announce URL.
    Tracker(String),
    /// The DHT.
    Dht,
}

/// One source's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceResult {
    /// Who was asked.
    pub source: Source,
    /// What it said, or why it told us nothing usable.
    pub result: Result<Figures, String>,
}

/// What a health check learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The best figures over the sources that answered; `None` when none did.
    pub figures: Option<Figures>,
    /// Each source's outcome, in the order they were given.
    pub sources: Vec<SourceResult>,
}

impl HealthReport {
    /// A report over `sources`: the best answer (most seeders, then most leechers) wins.
    pub fn new(info_hash: InfoHash, sources: Vec<SourceResult>) -> HealthReport {
        let figures = sources.iter().filter_map(|s| s.result.as_ref().ok().copied()).max();
        HealthReport { info_hash, figures, sources }
    }
}

/// Why a scrape answer is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The tracker could not be asked or did not answer properly.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// A count is out of range: above [`MAX_FIGURE`] or negative.
    #[error("implausible {field} count from tracker: {value}")]
    Implausible {
        /// `seeders` or `leechers`.
        field: &'static str,
        /// What the tracker said.
        value: i128,
    },
}

/// Checks a tracker's figures against [`MAX_FIGURE`].
pub fn sane(stats: &ScrapeStats) -> Result<Figures, HealthError> {
    let check = |field, n: u32| {
        if n > MAX_FIGURE {
            Err(HealthError::Implausible { field, value: n.into() })
        } else {
            Ok(n)
        }
    };
    Ok(Figures { seeders: check("seeders", stats.complete)?, leechers: check("leechers", stats.incomplete)? })
}

/// Parses an HTTP scrape answer strictly: the entry for `info_hash` must be there, with
/// `complete` and `incomplete` as integers in `0..=MAX_FIGURE`. Entries for other torrents are
/// ignored (a tracker may list more); an answer about other torrents only is rejected.
pub fn parse_http_scrape(body: &[u8], info_hash: &InfoHash) -> Result<Figures, HealthError> {
    let entry = scrape_entry(body, info_hash)?;
    let stats = entry.as_dict().ok_or(TrackerError::Malformed("scrape entry is not a dictionary"))?;
    let field = |key: &[u8], name: &'static str| -> Result<u32, HealthError> {
        let v = stats.get(key).ok_or(TrackerError::Malformed("scrape entry lacks complete or incomplete"))?;
        let n: i128 = match (v.as_u64(), v.as_i64()) {
            (Some(n), _) => n.into(),
            (None, Some(n)) => n.into(),
            // Not an integer, or one beyond 64 bits.
            _ => return Err(TrackerError::Malformed("scrape count is not a 64-bit integer").into()),
        };
        u32::try_from(n).ok().filter(|n| *n <= MAX_FIGURE).ok_or(HealthError::Implausible { field: name, value: n })
    };
    Ok(Figures { seeders: field(b"complete", "seeders")?, leechers: field(b"incomplete", "leechers")? })
}

/// A DHT count as a source's figures: nothing when no node answered (a count of nobody is not
/// a swarm of nobody), else its estimates within [`MAX_FIGURE`].
pub fn dht_figures(swarm: &SwarmCount) -> Result<Figures, String> {
    if swarm.nodes_answered == 0 {
        return Err("no DHT node answered".into());
    }
    let stats = ScrapeStats { complete: swarm.seeders, incomplete: swarm.leechers, downloaded: 0 };
    sane(&stats).map_err(|e| e.to_string())
}

/// Traffic a [`HealthCheck`] asks the runtime to carry, for one of its trackers (`slot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthRequest {
    /// GET this URL; pass the body to [`HealthCheck::handle_http`].
    HttpGet {
        /// The tracker's slot in the check.
        slot: usize,
        /// The full scrape URL.
        url: String,
    },
    /// Send a datagram to `host:port` from a socket kept for the slot; pass what comes back
    /// to [`HealthCheck::handle_udp`].
    UdpSend {
        /// The tracker's slot in the check.
        slot: usize,
        /// Tracker host name or address.
        host: String,
        /// Tracker port.
        port: u16,
        /// The datagram.
        data: Vec<u8>,
    },
    /// The slot's UDP exchange is over: drop its socket.
    UdpClose {
        /// The tracker's slot in the check.
        slot: usize,
    },
}

/// One tracker of a check and where its scrape stands.
#[derive(Debug)]
enum Slot {
    /// The GET is to be sent (`Some`) or is out (`None`).
    Http { url: String, request: Option<String> },
    /// A BEP 15 exchange.
    Udp { url: String, host: String, port: u16, exchange: Box<UdpExchange>, opened: bool },
    /// Finished with this outcome.
    Done(SourceResult),
}

/// One health check of one torrent over a list of trackers (see the module docs).
///
/// Drive it like every machine in the core: after creating it and after each `handle_*`,
/// drain [`poll_request`](Self::poll_request), then look at [`is_finished`](Self::is_finished);
/// wake it at [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct HealthCheck {
    info_hash: InfoHash,
    deadline: Instant,
    slots: Vec<Slot>,
    /// The DHT as a source: not asked (`None`), waited for, or answered.
    dht: Option<Option<SourceResult>>,
    /// Requests ready for the runtime.
    out: VecDeque<HealthRequest>,
}

impl HealthCheck {
    /// Starts a check of `info_hash` with `trackers` (announce URLs), giving up at
    /// `now + timeout`. Repeated and blank URLs are dropped; URLs we cannot scrape are
    /// recorded as failed sources at once.
    pub fn new(info_hash: InfoHash, trackers: &[String], now: Instant, timeout: Duration, rng: &mut impl Rng) -> Self {
        // A timeout of a few seconds still leaves room for a retransmission or two.
        let base_timeout = (timeout / 3).clamp(Duration::from_millis(500), Duration::from_secs(15));
        let udp_config = UdpConfig { base_timeout, max_attempts: 3 };
        let mut seen = HashSet::new();
        let mut slots = Vec::new();
        for url in trackers.iter().map(|u| u.trim()) {
            if url.is_empty() || !seen.insert(url) {
                continue;
            }
            if slots.len() >= MAX_TRACKERS_PER_CHECK {
                break;
            }
            let failed =
                |e: String| Slot::Done(SourceResult { source: Source::Tracker(url.to_owned()), result: Err(e) });
            let slot = match tracker_kind(url) {
                Err(e) => failed(e.to_string()),
                Ok(TrackerKind::Http) => match scrape_request_url(url, &info_hash) {
                    Some(request) => Slot::Http { url: url.to_owned(), request: Some(request) },
                    None => failed("the tracker has no scrape URL (BEP 48)".into()),
                },
                Ok(TrackerKind::Udp) => match parse_udp_url(url) {
                    Err(e) => failed(e.to_string()),
                    Ok((host, port)) => {
                        let mut exchange = UdpExchange::scrape(info_hash, now, rng, &udp_config);
                        exchange.set_ipv6(host.parse::<std::net::Ipv6Addr>().is_ok());
                        Slot::Udp { url: url.to_owned(), host, port, exchange: Box::new(exchange), opened: false }
                    }
                },
            };
            slots.push(slot);
        }
        let mut check = HealthCheck { info_hash, deadline: now + timeout, slots, dht: None, out: VecDeque::new() };
        for slot in 0..check.slots.len() {
            check.pump(slot);
        }
        check
    }

    /// Makes the check wait for a DHT count too, until [`handle_dht`](Self::handle_dht) or its
    /// deadline.
    pub fn with_dht(mut self) -> Self {
        self.dht = Some(None);
        self
    }

    /// The DHT's count (see [`dht_figures`]), or why there is none.
    pub fn handle_dht(&mut self, result: Result<Figures, String>) {
        if let Some(slot @ None) = &mut self.dht {
            *slot = Some(SourceResult { source: Source::Dht, result });
        }
    }

    /// The torrent being checked.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The next request for the runtime, if any.
    pub fn poll_request(&mut self) -> Option<HealthRequest> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_finished() {
            return None;
        }
        let udp = self.slots.iter().filter_map(|s| match s {
            Slot::Udp { exchange, .. } => exchange.poll_timeout(),
            _ => None,
        });
        Some(udp.fold(self.deadline, Instant::min))
    }

    /// Whether every source has answered or failed.
    pub fn is_finished(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, Slot::Done(_))) && !matches!(self.dht, Some(None))
    }

    /// The report, once [`is_finished`](Self::is_finished); `None` before.
    pub fn report(&self) -> Option<HealthReport> {
        let dht = match &self.dht {
            None => None,
            Some(None) => return None,
            Some(Some(r)) => Some(r.clone()),
        };
        let sources = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Done(r) => Some(r.clone()),
                _ => None,
            })
            .chain(dht.map(Some))
            .collect::<Option<Vec<_>>>()?;
        Some(HealthReport::new(self.info_hash, sources))
    }

    /// The body of the slot's HTTP scrape, or why the GET failed.
    pub fn handle_http(&mut self, slot: usize, result: Result<Vec<u8>, String>) {
        let Some(Slot::Http { url, request: None }) = self.slots.get(slot) else { return };
        let url = url.clone();
        let result = result.and_then(|body| parse_http_scrape(&body, &self.info_hash).map_err(|e| e.to_string()));
        self.slots[slot] = Slot::Done(SourceResult { source: Source::Tracker(url), result });
    }

    /// A datagram for the slot's UDP exchange, or why its socket failed.
    pub fn handle_udp(&mut self, slot: usize, now: Instant, result: Result<&[u8], String>, rng: &mut impl Rng) {
        let Some(Slot::Udp { exchange, .. }) = self.slots.get_mut(slot) else { return };
        match result {
            Ok(data) => {
                exchange.handle_datagram(now, data, rng);
                self.pump(slot);
            }
            Err(e) => self.finish(slot, Err(e)),
        }
    }

    /// The passing of time: UDP retransmissions, and the check's deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            if let Slot::Udp { exchange, .. } = &mut self.slots[slot] {
                exchange.handle_timeout(now);
                self.pump(slot);
            }
        }
        if now >= self.deadline {
            for slot in 0..self.slots.len() {
                if !matches!(self.slots[slot], Slot::Done(_)) {
                    self.finish(slot, Err(TrackerError::Timeout.to_string()));
                }
            }
            self.handle_dht(Err("the DHT count did not end in time".into()));
        }
    }

    /// Moves a slot's pending traffic to the output and takes its result if it has one.
    fn pump(&mut self, slot: usize) {
        match &mut self.slots[slot] {
            Slot::Http { request, .. } => {
                if let Some(url) = request.take() {
                    self.out.push_back(HealthRequest::HttpGet { slot, url });
                }
            }
            Slot::Udp { host, port, exchange, opened, .. } => {
                while let Some(data) = exchange.poll_transmit() {
                    *opened = true;
                    self.out.push_back(HealthRequest::UdpSend { slot, host: host.clone(), port: *port, data });
                }
                let result = match exchange.result() {
                    None => return,
                    Some(Ok(UdpOutcome::Scrape(stats))) => sane(&stats).map_err(|e| e.to_string()),
                    Some(Ok(UdpOutcome::Announce(_))) => Err("announce answer to a scrape".to_owned()),
                    Some(Err(e)) => Err(e.to_string()),
                };
                self.finish(slot, result);
            }
            Slot::Done(_) => {}
        }
    }

    /// Ends a slot with `result`, closing its UDP socket if it opened one.
    fn finish(&mut self, slot: usize, result: Result<Figures, String>) {
        let url = match &self.slots[slot] {
            Slot::Http { url, .. } => url.clone(),
            Slot::Udp { url, opened, .. } => {
                if *opened {
                    self.out.push_back(HealthRequest::UdpClose { slot });
                }
                url.clone()
            }
            Slot::Done(_) => return,
        };
        self.slots[slot] = Slot::Done(SourceResult { source: Source::Tracker(url), result });
    }
}

#[cfg(test)]
mod tests;
