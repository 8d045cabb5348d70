//! The engine's health checks: [`HealthCheck`] machines for any info-hash, their tracker
//! traffic carried as ordinary HTTP requests and UDP exchanges, each ending in [`Event::HealthChecked`].
//!
//! The jobs of a check are not a torrent's, so they live in their own table: the engine
//! offers a tracker completion to its torrents first and to the checks after.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use super::event::DhtScrapeId;
use super::event::Event;
use super::outbox::Outbox;
use super::output::{Output, UdpIo};
use crate::dht::SwarmCount;
use crate::health::{dht_figures, HealthCheck, HealthCheckId, HealthRequest};
use crate::tracker::TransportError;
use crate::types::ExchangeId;
use crate::types::{Instant, JobId};

/// At most this many checks run at once; more are refused ([`Engine::check_health`](crate::Engine::check_health)).
pub const MAX_RUNNING_CHECKS: usize = 64;

/// The longest a check may take.
pub const MAX_CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// A running check and the job id of each of its tracker slots.
struct Running {
    check: HealthCheck,
    jobs: HashMap<usize, JobId>,
    /// Its DHT count, while it runs.
    dht: Option<DhtScrapeId>,
}

/// Every running health check of the engine.
#[derive(Default)]
pub(crate) struct HealthChecks {
    running: BTreeMap<HealthCheckId, Running>,
    /// Which check and slot each tracker job belongs to.
    jobs: HashMap<JobId, (HealthCheckId, usize)>,
    /// Which check each DHT count belongs to.
    dht: HashMap<DhtScrapeId, HealthCheckId>,
    next: u64,
}

/// Why a health check could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthCheckError {
    /// [`MAX_RUNNING_CHECKS`] checks are running already.
    #[error("too many health checks running (at most {MAX_RUNNING_CHECKS})")]
    Busy,
}

impl HealthChecks {
    /// The earliest deadline of a running check.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.running.values().filter_map(|r| r.check.poll_timeout()).min()
    }

    /// Whether `job` is a health check's.
    pub fn owns(&self, job: JobId) -> bool {
        self.jobs.contains_key(&job)
    }

    /// Whether as many checks run as may ([`MAX_RUNNING_CHECKS`]).
    pub(super) fn is_full(&self) -> bool {
        self.running.len() >= MAX_RUNNING_CHECKS
    }

    pub(super) fn start(&mut self, check: HealthCheck, dht: Option<DhtScrapeId>, out: &mut Outbox) -> HealthCheckId {
        self.next += 1;
        let id = HealthCheckId(self.next);
        if let Some(scrape) = dht {
            self.dht.insert(scrape, id);
        }
        self.running.insert(id, Running { check, jobs: HashMap::new(), dht });
        self.pump(id, out);
        id
    }

    /// Carries a check's requests out and reports it once finished.
    fn pump(&mut self, id: HealthCheckId, out: &mut Outbox) {
        let Some(r) = self.running.get_mut(&id) else { return };
        while let Some(req) = r.check.poll_request() {
            let slot = match &req {
                HealthRequest::HttpGet { slot, .. }
                | HealthRequest::UdpSend { slot, .. }
                | HealthRequest::UdpClose { slot } => *slot,
            };
            let job = *r.jobs.entry(slot).or_insert_with(|| {
                let job = out.unrouted_job();
                self.jobs.insert(job, (id, slot));
                job
            });
            out.push(match req {
                HealthRequest::HttpGet { url, .. } => Output::Http { id: job, url },
                HealthRequest::UdpSend { host, port, data, .. } => {
                    Output::Udp(UdpIo::Exchange { exchange: ExchangeId::of(job), host, port, data })
                }
                HealthRequest::UdpClose { .. } => Output::Udp(UdpIo::EndExchange { exchange: ExchangeId::of(job) }),
            });
        }
        let Some(report) = r.check.report() else { return };
        if let Some(r) = self.running.remove(&id) {
            for job in r.jobs.values() {
                self.jobs.remove(job);
            }
            // A count still running ends unheard (the DHT has no way to cancel a lookup).
            if let Some(scrape) = r.dht {
                self.dht.remove(&scrape);
            }
        }
        out.event(Event::HealthChecked { check: id, report });
    }

    pub fn handle_http(&mut self, job: JobId, result: Result<Vec<u8>, TransportError>, out: &mut Outbox) {
        let Some(&(id, slot)) = self.jobs.get(&job) else { return };
        if let Some(r) = self.running.get_mut(&id) {
            // A health report gives each source's failure as text.
            r.check.handle_http(slot, result.map_err(|e| e.to_string()));
        }
        self.pump(id, out);
    }

    pub fn handle_udp(
        &mut self,
        job: JobId,
        result: Result<&[u8], TransportError>,
        now: Instant,
        rng: &mut ChaCha8Rng,
        out: &mut Outbox,
    ) {
        let Some(&(id, slot)) = self.jobs.get(&job) else { return };
        if let Some(r) = self.running.get_mut(&id) {
            r.check.handle_udp(slot, now, result.map_err(|e| e.to_string()), rng);
        }
        self.pump(id, out);
    }

    /// A DHT count ended; it is a check's if the check still waits for it.
    pub fn handle_dht(&mut self, scrape: DhtScrapeId, swarm: &SwarmCount, out: &mut Outbox) {
        let Some(id) = self.dht.remove(&scrape) else { return };
        if let Some(r) = self.running.get_mut(&id) {
            r.dht = None;
            r.check.handle_dht(dht_figures(swarm));
        }
        self.pump(id, out);
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox) {
        let due: Vec<HealthCheckId> = self
            .running
            .iter()
            .filter(|(_, r)| r.check.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(r) = self.running.get_mut(&id) {
                r.check.handle_timeout(now);
            }
            self.pump(id, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Event, HealthCheckError, Instant, Output, UdpIo, MAX_RUNNING_CHECKS};
    use crate::engine::Engine;
    use crate::engine::{Config, Input};
    use crate::health::Figures;
    use crate::types::InfoHash;

    fn ih() -> InfoHash {
        InfoHash([7; 20])
    }

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    /// The tracker traffic (HTTP requests and UDP work) and health events the engine asks for.
    fn drain(e: &mut Engine) -> (Vec<Output>, Vec<Event>) {
        let (mut jobs, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = e.poll_output() {
            match o {
                j @ (Output::Http { .. } | Output::Udp(_)) => jobs.push(j),
                Output::Event(ev @ Event::HealthChecked { .. }) => events.push(ev),
                _ => {}
            }
        }
        (jobs, events)
    }

    #[test]
    fn a_check_scrapes_any_info_hash_and_ends_in_an_event() {
        let mut e = Engine::new(Config::default(), 1, secs(0));
        let trackers = ["http://127.0.0.1:6969/announce".to_owned()];
        let id = e.check_health(ih(), &trackers, Duration::from_secs(10), secs(0)).unwrap();
        let (jobs, events) = drain(&mut e);
        assert!(events.is_empty());
        let [Output::Http { id: job, url }] = jobs.as_slice() else { panic!("{jobs:?}") };
        assert!(url.starts_with("http://127.0.0.1:6969/scrape?info_hash=%07"), "{url}");
        let body = [b"d5:filesd20:".as_slice(), &[7; 20], b"d8:completei4e10:incompletei2eeee"].concat();
        e.handle(Input::Http(*job, Ok(body)), secs(1));
        let (_, events) = drain(&mut e);
        let [Event::HealthChecked { check, report }] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(*check, id);
        assert_eq!(report.figures, Some(Figures { seeders: 4, leechers: 2 }));
        // The job is forgotten: a repeated answer does nothing.
        e.handle(Input::Http(*job, Ok(vec![])), secs(2));
        assert!(drain(&mut e).1.is_empty());
    }

    #[test]
    fn a_silent_check_times_out_and_closes_its_sockets() {
        let mut e = Engine::new(Config::default(), 2, secs(0));
        let trackers = ["udp://127.0.0.1:6969".to_owned()];
        e.check_health(ih(), &trackers, Duration::from_secs(5), secs(0)).unwrap();
        let (jobs, _) = drain(&mut e);
        assert!(matches!(jobs.as_slice(), [Output::Udp(UdpIo::Exchange { .. })]));
        let mut now = secs(0);
        let mut seen = Vec::new();
        while seen.is_empty() {
            now = e.poll_timeout().expect("running");
            assert!(now <= secs(5), "the check's deadline bounds the wait");
            e.handle_timeout(now);
            let (jobs, events) = drain(&mut e);
            if !events.is_empty() {
                assert!(jobs.iter().any(|j| matches!(j, Output::Udp(UdpIo::EndExchange { .. }))));
            }
            seen = events;
        }
        let Event::HealthChecked { report, .. } = &seen[0] else { unreachable!() };
        assert_eq!(report.figures, None);
        assert_eq!(now, secs(5));
    }

    #[test]
    fn running_checks_are_bounded() {
        let mut e = Engine::new(Config::default(), 3, secs(0));
        let trackers = ["udp://127.0.0.1:6969".to_owned()];
        for _ in 0..MAX_RUNNING_CHECKS {
            e.check_health(ih(), &trackers, Duration::from_secs(5), secs(0)).unwrap();
        }
        assert_eq!(e.check_health(ih(), &trackers, Duration::from_secs(5), secs(0)), Err(HealthCheckError::Busy));
    }
}
