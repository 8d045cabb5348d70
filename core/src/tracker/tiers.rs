//! The trackers of one torrent: BEP 12 tiers and the announce schedule.
//!
//! Policy, kept deliberately simple:
//!
//! * **Every tier is used** (like libtorrent with `announce_to_all_tiers = true`): each tier
//!   has one *current* tracker, and we keep announcing to the current tracker of every tier.
//! * **Within a tier** trackers are shuffled once (BEP 12). The current tracker is the first
//!   one in tier order that has not failed since it last answered; a tracker that answers moves
//!   to the front of its tier. When every tracker of a tier is failing, the one whose back-off
//!   ends first is retried. So a failure hands the tier to the next tracker at once.
//! * **One request in flight per tier** while running (hence per tracker).
//! * **Events**: a tracker's first announce carries `started`; after [`TrackerList::completed`]
//!   each tracker that got `started` is sent `completed` once, at once; after
//!   [`TrackerList::stop`] each tracker that acknowledged `started` is sent `stopped` once
//!   (success or failure both count), then the list goes quiet. A `started` sent after the
//!   download completed already tells the tracker we are a seed, so no `completed` follows it.
//! * **Timing**: after an answer, the tracker's `interval` (already clamped by the parsers);
//!   after a failure, a back-off of 15 s doubling up to 30 min. A forced re-announce is never
//!   sooner than the tracker's `min interval` after its last answer.
//! * Trackers whose scheme we cannot speak (e.g. `wss://`) are listed as `Disabled`.

use std::collections::HashSet;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::announce::{tracker_kind, AnnounceEvent, AnnounceResponse, ScrapeStats, TrackerError};
use crate::types::Instant;

/// The first back-off after a failure; it doubles with each further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(15);
/// The longest back-off after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// At most this many trackers are kept per torrent; a metainfo listing more is cut short.
pub const MAX_TRACKERS: usize = 500;

/// Identifies one tracker inside its [`TrackerList`]; stable while trackers move in a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackerIndex(u32);

/// What we know about one tracker, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerState {
    /// Never asked (yet).
    NotContacted,
    /// A request is in flight.
    Updating,
    /// Its last answer was a success.
    Working,
    /// Its last request failed, for this reason.
    Error(TrackerError),
    /// Never used: we cannot speak its protocol.
    Disabled,
}

/// A snapshot of one tracker for the user interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerStatus {
    /// The announce URL.
    pub url: String,
    /// Its tier, from 0.
    pub tier: usize,
    /// Where it stands.
    pub state: TrackerState,
    /// Peers in its last answer.
    pub peers: u32,
    /// Seeders in its last answer, if it said.
    pub seeders: Option<u32>,
    /// Leechers in its last answer, if it said.
    pub leechers: Option<u32>,
    /// When we will announce to it next, if it is its tier's current tracker.
    pub next_announce: Option<Instant>,
    /// Its last warning or error, or why it is disabled.
    pub message: Option<String>,
}

/// The request currently out to a tracker.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    event: AnnounceEvent,
    /// Whether the download was already complete when the request went out.
    completed_at_issue: bool,
}

/// Everything we remember about one tracker.
#[derive(Debug, Clone)]
struct Tracker {
    url: String,
    tier: usize,
    /// Why we never use it, if we don't.
    disabled: Option<String>,
    /// The last outcome: `NotContacted`, `Working` or `Error`.
    outcome: TrackerState,
    in_flight: Option<InFlight>,
    /// Failures since its last success.
    fails: u32,
    next_announce: Instant,
    last_success: Option<Instant>,
    min_interval: Duration,
    started_acked: bool,
    /// Asked to announce again while a request was out: the next goes once it is answered.
    reannounce: bool,
    completed_sent: bool,
    stop_done: bool,
    peers: u32,
    seeders: Option<u32>,
    leechers: Option<u32>,
    message: Option<String>,
    tracker_id: Option<String>,
}

impl Tracker {
    fn usable(&self) -> bool {
        self.disabled.is_none()
    }

    /// Whether `stopped` is still owed to this tracker once we are stopping.
    fn owes_stop(&self) -> bool {
        self.usable() && self.started_acked && !self.stop_done
    }
}

/// Where the torrent stands with its trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started: nothing is announced.
    Idle,
    /// Announcing on schedule.
    Running,
    /// Sending `stopped` where owed, then quiet.
    Stopping,
}

/// The trackers of one torrent and when to announce to which (see the module docs).
#[derive(Debug, Clone)]
pub struct TrackerList {
    trackers: Vec<Tracker>,
    /// Per tier, indices into `trackers` in the order we try them.
    tiers: Vec<Vec<usize>>,
    phase: Phase,
    /// Whether the download completed during this session.
    completed: bool,
}

impl TrackerList {
    /// Builds the list from the metainfo's tiers, shuffling each tier with `seed` (BEP 12).
    ///
    /// Blank and repeated URLs are dropped, and so are tiers left empty; only the first
    /// [`MAX_TRACKERS`] URLs are kept.
    pub fn new(tiers: Vec<Vec<String>>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let mut list = TrackerList { trackers: Vec::new(), tiers: Vec::new(), phase: Phase::Idle, completed: false };
        for urls in tiers {
            let tier = list.tiers.len();
            let mut order = Vec::new();
            for url in urls {
                let url = url.trim().to_owned();
                if url.is_empty() || list.trackers.len() >= MAX_TRACKERS || !seen.insert(url.clone()) {
                    continue;
                }
                order.push(list.trackers.len());
                list.trackers.push(Tracker {
                    disabled: tracker_kind(&url).err().map(|e| e.to_string()),
                    url,
                    tier,
                    outcome: TrackerState::NotContacted,
                    in_flight: None,
                    fails: 0,
                    next_announce: Instant::ZERO,
                    last_success: None,
                    min_interval: Duration::ZERO,
                    started_acked: false,
                    reannounce: false,
                    completed_sent: false,
                    stop_done: false,
                    peers: 0,
                    seeders: None,
                    leechers: None,
                    message: None,
                    tracker_id: None,
                });
            }
            if !order.is_empty() {
                order.shuffle(&mut rng);
                list.tiers.push(order);
            }
        }
        list
    }

    /// Starts announcing: every tracker's next announce carries `started`. No-op if running.
    pub fn start(&mut self, now: Instant) {
        if self.phase == Phase::Running {
            return;
        }
        self.phase = Phase::Running;
        self.completed = false;
        for t in &mut self.trackers {
            t.started_acked = false;
            t.completed_sent = false;
            t.stop_done = false;
            t.fails = 0;
            t.next_announce = now;
        }
    }

    /// Reports that the download finished during this session: `completed` goes out at once
    /// to every working tracker that got `started`.
    ///
    /// Do not call it for a torrent that was already complete when started (BEP 3).
    pub fn completed(&mut self, now: Instant) {
        self.completed = true;
        if self.phase != Phase::Running {
            return;
        }
        for t in &mut self.trackers {
            if t.usable() && t.started_acked && !t.completed_sent && t.fails == 0 && t.in_flight.is_none() {
                t.next_announce = now;
            }
        }
    }

    /// Leaves the swarm: `stopped` goes to every tracker that acknowledged `started`, once.
    pub fn stop(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        self.phase = Phase::Stopping;
        for t in &mut self.trackers {
            if t.owes_stop() {
                t.next_announce = now;
            }
        }
    }

    /// Announces again as soon as each tracker's `min interval` allows (ignoring back-off); a
    /// tracker with a request out is asked again once it answers (that request may carry what
    /// changed too late: our address, say).
    pub fn force_reannounce(&mut self, now: Instant) {
        if self.phase != Phase::Running {
            return;
        }
        for t in &mut self.trackers {
            if t.usable() && t.in_flight.is_none() {
                let earliest = t.last_success.map_or(now, |at| at + t.min_interval);
                t.next_announce = earliest.max(now);
            } else if t.usable() {
                t.reannounce = true;
            }
        }
    }

    /// The next announce due at `now`: which tracker, its URL, and the event to send.
    ///
    /// The tracker is then `Updating` until [`on_response`](Self::on_response) or
    /// [`on_error`](Self::on_error). Call repeatedly until `None`.
    pub fn poll_announce(&mut self, now: Instant) -> Option<(TrackerIndex, String, AnnounceEvent)> {
        let (i, event) = match self.phase {
            Phase::Idle => return None,
            Phase::Running => {
                let i = (0..self.tiers.len())
                    .filter_map(|tier| self.candidate(tier))
                    .find(|&i| self.trackers[i].next_announce <= now)?;
                (i, self.running_event(i))
            }
            Phase::Stopping => {
                let i = self.stop_pending().find(|&i| self.trackers[i].next_announce <= now)?;
                (i, AnnounceEvent::Stopped)
            }
        };
        let completed_at_issue = self.completed;
        let t = &mut self.trackers[i];
        t.in_flight = Some(InFlight { event, completed_at_issue });
        let index = TrackerIndex(u32::try_from(i).expect("at most MAX_TRACKERS trackers, which fits in u32"));
        Some((index, t.url.clone(), event))
    }

    /// Records a successful answer and schedules the next announce at its interval.
    ///
    /// Answers for a tracker with no request in flight are ignored.
    pub fn on_response(&mut self, t: TrackerIndex, now: Instant, r: &AnnounceResponse) {
        let phase = self.phase;
        let completed = self.completed;
        let Some(tr) = self.trackers.get_mut(t.0 as usize) else {
            return;
        };
        let Some(flight) = tr.in_flight.take() else {
            return;
        };
        tr.fails = 0;
        tr.outcome = TrackerState::Working;
        tr.peers = u32::try_from(r.peers.len()).unwrap_or(u32::MAX);
        tr.seeders = r.complete;
        tr.leechers = r.incomplete;
        tr.message = r.warning.clone();
        if r.tracker_id.is_some() {
            tr.tracker_id = r.tracker_id.clone();
        }
        tr.last_success = Some(now);
        tr.min_interval = r.min_interval.unwrap_or(Duration::ZERO);
        match flight.event {
            AnnounceEvent::Started => {
                tr.started_acked = true;
                tr.completed_sent |= flight.completed_at_issue;
            }
            AnnounceEvent::Completed => tr.completed_sent = true,
            AnnounceEvent::Stopped => tr.stop_done = true,
            AnnounceEvent::None => {}
        }
        tr.next_announce = match phase {
            // The answer to a `stopped` sent before a quick restart (pause and resume): the
            // restart's `started` goes out now, not an interval later.
            Phase::Running if !tr.started_acked => now,
            Phase::Running if completed && !tr.completed_sent => now,
            Phase::Running if std::mem::take(&mut tr.reannounce) => now + tr.min_interval,
            Phase::Running => now + r.interval,
            // Owed a `stopped` now (if it acknowledged `started` while we were stopping).
            Phase::Stopping | Phase::Idle => now,
        };
        let (tier, index) = (tr.tier, t.0 as usize);
        if let Some(order) = self.tiers.get_mut(tier) {
            if let Some(pos) = order.iter().position(|&i| i == index) {
                order[..=pos].rotate_right(1);
            }
        }
    }

    /// Records a failed request; the tracker backs off and its tier tries the next tracker.
    ///
    /// Errors for a tracker with no request in flight are ignored.
    pub fn on_error(&mut self, t: TrackerIndex, now: Instant, err: TrackerError) {
        let phase = self.phase;
        let Some(tr) = self.trackers.get_mut(t.0 as usize) else {
            return;
        };
        let Some(flight) = tr.in_flight.take() else {
            return;
        };
        tr.fails = tr.fails.saturating_add(1);
        // The retry after the back-off carries whatever changed.
        tr.reannounce = false;
        tr.message = Some(err.to_string());
        tr.outcome = TrackerState::Error(err);
        if flight.event == AnnounceEvent::Stopped {
            tr.stop_done = true;
        }
        tr.next_announce = match phase {
            Phase::Running => now + backoff(tr.fails),
            Phase::Stopping | Phase::Idle => now,
        };
    }

    /// When [`poll_announce`](Self::poll_announce) will next have something; `None` if never
    /// without another input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => None,
            Phase::Running => (0..self.tiers.len())
                .filter_map(|tier| self.candidate(tier))
                .map(|i| self.trackers[i].next_announce)
                .min(),
            Phase::Stopping => self.stop_pending().map(|i| self.trackers[i].next_announce).min(),
        }
    }

    /// A snapshot of every tracker, tier by tier, in the order they are tried.
    pub fn statuses(&self) -> Vec<TrackerStatus> {
        let mut out = Vec::with_capacity(self.trackers.len());
        for (tier, order) in self.tiers.iter().enumerate() {
            let current = if self.phase == Phase::Running { self.candidate(tier) } else { None };
            for &i in order {
                let t = &self.trackers[i];
                let state = if t.disabled.is_some() {
                    TrackerState::Disabled
                } else if t.in_flight.is_some() {
                    TrackerState::Updating
                } else {
                    t.outcome.clone()
                };
                out.push(TrackerStatus {
                    url: t.url.clone(),
                    tier,
                    state,
                    peers: t.peers,
                    seeders: t.seeders,
                    leechers: t.leechers,
                    next_announce: (current == Some(i)).then_some(t.next_announce),
                    message: t.disabled.clone().or_else(|| t.message.clone()),
                });
            }
        }
        out
    }

    /// After [`stop`](Self::stop): whether every owed `stopped` was sent and answered or failed.
    pub fn is_stopped_done(&self) -> bool {
        match self.phase {
            Phase::Running => false,
            Phase::Idle => true,
            Phase::Stopping => {
                self.trackers.iter().all(|t| t.in_flight.is_none()) && self.stop_pending().next().is_none()
            }
        }
    }

    /// The `tracker id` this tracker asked us to echo, for the next [`super::AnnounceParams`].
    pub fn tracker_id(&self, t: TrackerIndex) -> Option<&str> {
        self.trackers.get(t.0 as usize)?.tracker_id.as_deref()
    }

    /// Every tracker we can speak to, for a scrape (BEP 48 / BEP 15 scrape).
    pub fn scrape_targets(&self) -> Vec<(TrackerIndex, String)> {
        self.trackers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.usable())
            .map(|(i, t)| (TrackerIndex(i as u32), t.url.clone()))
            .collect()
    }

    /// Records a scrape answer: the swarm's seeder and leecher counts.
    pub fn on_scrape(&mut self, t: TrackerIndex, stats: &ScrapeStats) {
        if let Some(tr) = self.trackers.get_mut(t.0 as usize) {
            tr.seeders = Some(stats.complete);
            tr.leechers = Some(stats.incomplete);
        }
    }

    /// The URL of a tracker.
    pub fn url(&self, t: TrackerIndex) -> Option<&str> {
        self.trackers.get(t.0 as usize).map(|t| t.url.as_str())
    }

    /// The tracker of `tier` we would announce to while running, if any.
    fn candidate(&self, tier: usize) -> Option<usize> {
        let order = self.tiers.get(tier)?;
        let mut usable = order.iter().copied().filter(|&i| self.trackers[i].usable());
        if usable.clone().any(|i| self.trackers[i].in_flight.is_some()) {
            return None;
        }
        if let Some(i) = usable.clone().find(|&i| self.trackers[i].fails == 0) {
            return Some(i);
        }
        // Everyone is failing: retry whoever's back-off ends first (ties: tier order).
        let first = usable.next()?;
        Some(usable.fold(first, |best, i| {
            if self.trackers[i].next_announce < self.trackers[best].next_announce {
                i
            } else {
                best
            }
        }))
    }

    /// Trackers still owed a `stopped` with nothing in flight.
    fn stop_pending(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.trackers.len()).filter(|&i| self.trackers[i].owes_stop() && self.trackers[i].in_flight.is_none())
    }

    fn running_event(&self, i: usize) -> AnnounceEvent {
        let t = &self.trackers[i];
        if !t.started_acked {
            AnnounceEvent::Started
        } else if self.completed && !t.completed_sent {
            AnnounceEvent::Completed
        } else {
            AnnounceEvent::None
        }
    }
}

/// The wait after the `fails`-th consecutive failure: 15 s, 30 s, 60 s, … up to 30 min.
fn backoff(fails: u32) -> Duration {
    let exp = fails.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request the runtime could not complete, in its words.
    fn failed(words: &str) -> TrackerError {
        crate::tracker::TransportError::Failed(words.to_owned()).into()
    }

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn answer(interval: u64, min_interval: Option<u64>) -> AnnounceResponse {
        AnnounceResponse {
            interval: Duration::from_secs(interval),
            min_interval: min_interval.map(Duration::from_secs),
            peers: vec!["10.0.0.1:6881".parse().unwrap()],
            complete: Some(3),
            incomplete: Some(4),
            tracker_id: None,
            warning: None,
        }
    }

    fn list(tiers: &[&[&str]]) -> TrackerList {
        let tiers = tiers.iter().map(|t| t.iter().map(|s| s.to_string()).collect()).collect();
        TrackerList::new(tiers, 42)
    }

    /// Drains every announce due at `now`.
    fn drain(l: &mut TrackerList, now: Instant) -> Vec<(TrackerIndex, String, AnnounceEvent)> {
        std::iter::from_fn(|| l.poll_announce(now)).collect()
    }

    #[test]
    fn announces_to_the_first_tracker_of_every_tier() {
        let mut l = list(&[&["http://a/announce"], &["udp://b:1", "udp://c:1"]]);
        assert_eq!(l.poll_announce(secs(0)), None, "nothing before start");
        assert_eq!(l.poll_timeout(), None);
        l.start(secs(0));
        let due = drain(&mut l, secs(0));
        assert_eq!(due.len(), 2, "one per tier, one in flight per tier: {due:?}");
        assert_eq!(due[0].1, "http://a/announce");
        assert!(due[1].1 == "udp://b:1" || due[1].1 == "udp://c:1");
        assert!(due.iter().all(|d| d.2 == AnnounceEvent::Started));
        let st = l.statuses();
        assert_eq!(st.iter().filter(|s| s.state == TrackerState::Updating).count(), 2);

        for (t, _, _) in &due {
            l.on_response(*t, secs(1), &answer(1800, None));
        }
        assert_eq!(l.poll_timeout(), Some(secs(1801)));
        assert_eq!(drain(&mut l, secs(1800)), vec![]);
        let again = drain(&mut l, secs(1801));
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|d| d.2 == AnnounceEvent::None));
    }

    #[test]
    fn tiers_are_shuffled_deterministically() {
        let urls: Vec<String> = (0..8).map(|i| format!("http://t{i}/announce")).collect();
        let order = |seed| {
            let l = TrackerList::new(vec![urls.clone()], seed);
            l.statuses().into_iter().map(|s| s.url).collect::<Vec<_>>()
        };
        assert_eq!(order(1), order(1));
        assert_ne!(order(1), urls, "shuffled (this seed does move something)");
        let mut sorted = order(1);
        sorted.sort();
        assert_eq!(sorted, urls);
    }

    #[test]
    fn failover_within_a_tier_and_responder_moves_to_front() {
        let mut l = list(&[&["http://a/announce", "http://b/announce"]]);
        l.start(secs(0));
        let (first, first_url, _) = l.poll_announce(secs(0)).unwrap();
        assert_eq!(l.poll_announce(secs(0)), None, "one in flight per tier");
        l.on_error(first, secs(5), failed("connection refused"));
        // The other tracker of the tier gets its chance at once, with `started`.
        let (second, second_url, ev) = l.poll_announce(secs(5)).unwrap();
        assert_ne!(first_url, second_url);
        assert_eq!(ev, AnnounceEvent::Started);
        l.on_response(second, secs(6), &answer(600, None));
        let st = l.statuses();
        assert_eq!(st[0].url, second_url, "the responder leads its tier");
        assert_eq!(st[0].state, TrackerState::Working);
        assert_eq!(st[0].next_announce, Some(secs(606)));
        assert_eq!(st[1].state, TrackerState::Error(failed("connection refused")));
        assert_eq!(st[1].next_announce, None, "not the current tracker");
        // The failed tracker is not retried while the other one works.
        assert_eq!(l.poll_timeout(), Some(secs(606)));
        let (t, url, ev) = l.poll_announce(secs(606)).unwrap();
        assert_eq!((t, url, ev), (second, second_url, AnnounceEvent::None));
    }

    #[test]
    fn back_off_doubles_to_thirty_minutes() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let mut now = secs(0);
        let mut waits = vec![];
        for _ in 0..10 {
            let (t, _, ev) = l.poll_announce(now).unwrap();
            assert_eq!(ev, AnnounceEvent::Started, "never acknowledged");
            l.on_error(t, now, failed("timeout"));
            let next = l.poll_timeout().unwrap();
            waits.push((next - now).as_secs());
            assert_eq!(l.poll_announce(now), None);
            now = next;
        }
        assert_eq!(waits, vec![15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        // Success resets the back-off.
        let (t, _, _) = l.poll_announce(now).unwrap();
        l.on_response(t, now, &answer(900, None));
        assert_eq!(l.poll_timeout(), Some(now + Duration::from_secs(900)));
    }

    #[test]
    fn all_failing_tier_alternates_by_back_off() {
        let mut l = list(&[&["http://a/announce", "http://b/announce"]]);
        l.start(secs(0));
        let (x, _, _) = l.poll_announce(secs(0)).unwrap();
        l.on_error(x, secs(0), failed("e"));
        let (y, _, _) = l.poll_announce(secs(0)).unwrap();
        assert_ne!(x, y);
        l.on_error(y, secs(1), failed("e"));
        // x's back-off (until 15 s) ends before y's (until 16 s).
        assert_eq!(l.poll_timeout(), Some(secs(15)));
        assert_eq!(l.poll_announce(secs(15)).unwrap().0, x);
    }

    #[test]
    fn started_completed_stopped_sequence() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let (t, _, ev) = l.poll_announce(secs(0)).unwrap();
        assert_eq!(ev, AnnounceEvent::Started);
        l.on_response(t, secs(1), &answer(1800, Some(900)));

        l.completed(secs(100));
        assert_eq!(l.poll_timeout(), Some(secs(100)), "completed goes out promptly");
        let (t, _, ev) = l.poll_announce(secs(100)).unwrap();
        assert_eq!(ev, AnnounceEvent::Completed);
        l.on_response(t, secs(101), &answer(1800, Some(900)));
        let (t, _, ev) = l.poll_announce(secs(1901)).unwrap();
        assert_eq!(ev, AnnounceEvent::None, "completed is sent once");
        l.on_response(t, secs(1902), &answer(1800, None));

        assert!(!l.is_stopped_done());
        l.stop(secs(2000));
        let (t, _, ev) = l.poll_announce(secs(2000)).unwrap();
        assert_eq!(ev, AnnounceEvent::Stopped);
        assert!(!l.is_stopped_done(), "stopped is in flight");
        l.on_response(t, secs(2001), &answer(1800, None));
        assert!(l.is_stopped_done());
        assert_eq!(l.poll_announce(secs(9999)), None, "quiet after stopping");
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn completed_waits_for_an_in_flight_announce() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let (t, _, _) = l.poll_announce(secs(0)).unwrap();
        l.on_response(t, secs(1), &answer(1800, None));
        let (t, _, ev) = l.poll_announce(secs(1801)).unwrap();
        assert_eq!(ev, AnnounceEvent::None);
        l.completed(secs(1802));
        assert_eq!(l.poll_announce(secs(1802)), None, "one in flight");
        l.on_response(t, secs(1803), &answer(1800, None));
        assert_eq!(l.poll_announce(secs(1803)).unwrap().2, AnnounceEvent::Completed);
    }

    #[test]
    fn started_after_completion_needs_no_completed() {
        let mut l = list(&[&["http://a/announce"], &["http://b/announce"]]);
        l.start(secs(0));
        let (a, _, _) = l.poll_announce(secs(0)).unwrap();
        let (b, _, _) = l.poll_announce(secs(0)).unwrap();
        l.on_response(a, secs(1), &answer(1800, None));
        l.on_error(b, secs(1), failed("down"));
        l.completed(secs(10));
        // a got `started` before completion: it is told; b's retry `started` says it all.
        let due = drain(&mut l, secs(16));
        assert_eq!(due.len(), 2);
        let ev = |x| due.iter().find(|d| d.0 == x).unwrap().2;
        assert_eq!((ev(a), ev(b)), (AnnounceEvent::Completed, AnnounceEvent::Started));
        l.on_response(a, secs(17), &answer(1800, None));
        l.on_response(b, secs(17), &answer(1800, None));
        assert_eq!(l.poll_timeout(), Some(secs(1817)));
        assert!(drain(&mut l, secs(1817)).iter().all(|d| d.2 == AnnounceEvent::None));
    }

    /// Found by the simulator (a user pausing and resuming at once): the answer to the
    /// `stopped` of the pause scheduled the next announce an interval later, so the tracker
    /// did not hear of the resumed torrent for 30 minutes.
    #[test]
    fn a_restart_while_stopped_is_in_flight_announces_started_when_it_is_answered() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let (t, _, _) = l.poll_announce(secs(0)).unwrap();
        l.on_response(t, secs(1), &answer(1800, None));
        l.stop(secs(10));
        let (t, _, ev) = l.poll_announce(secs(10)).unwrap();
        assert_eq!(ev, AnnounceEvent::Stopped);
        l.start(secs(11));
        assert_eq!(l.poll_announce(secs(11)), None, "one request in flight");
        l.on_response(t, secs(12), &answer(1800, None));
        assert_eq!(l.poll_timeout(), Some(secs(12)));
        assert_eq!(l.poll_announce(secs(12)).unwrap().2, AnnounceEvent::Started);
    }

    #[test]
    fn stop_goes_only_to_trackers_that_got_started() {
        let mut l = list(&[&["http://a/announce"], &["http://b/announce"], &["http://c/announce"]]);
        l.start(secs(0));
        let due = drain(&mut l, secs(0));
        let [(a, ..), (b, ..), (c, ..)] = [due[0].clone(), due[1].clone(), due[2].clone()];
        l.on_response(a, secs(1), &answer(1800, None));
        l.on_error(b, secs(1), failed("refused"));
        // c's `started` is still in flight when we stop.
        l.stop(secs(2));
        let stops = drain(&mut l, secs(2));
        assert_eq!(stops, vec![(a, "http://a/announce".into(), AnnounceEvent::Stopped)]);
        l.on_error(a, secs(3), failed("timeout"));
        assert!(!l.is_stopped_done(), "c is in flight");
        l.on_response(c, secs(4), &answer(1800, None));
        assert_eq!(l.poll_timeout(), Some(secs(4)));
        let stops = drain(&mut l, secs(4));
        assert_eq!(stops, vec![(c, "http://c/announce".into(), AnnounceEvent::Stopped)]);
        l.on_response(c, secs(5), &answer(1800, None));
        assert!(l.is_stopped_done());
        assert_eq!(drain(&mut l, secs(10_000)), vec![], "failed stops are not retried");
    }

    #[test]
    fn force_reannounce_respects_min_interval() {
        let mut l = list(&[&["http://a/announce"], &["http://b/announce"]]);
        l.start(secs(0));
        let due = drain(&mut l, secs(0));
        l.on_response(due[0].0, secs(10), &answer(1800, Some(300)));
        l.on_response(due[1].0, secs(10), &answer(1800, None));
        l.force_reannounce(secs(20));
        let now = drain(&mut l, secs(20));
        assert_eq!(now.iter().map(|d| d.0).collect::<Vec<_>>(), vec![due[1].0]);
        assert_eq!(l.poll_timeout(), Some(secs(310)));
        assert_eq!(drain(&mut l, secs(310)).len(), 1);
    }

    #[test]
    fn force_reannounce_during_a_request_announces_after_its_answer() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let due = drain(&mut l, secs(0));
        l.force_reannounce(secs(1));
        assert!(drain(&mut l, secs(1)).is_empty(), "one request at a time");
        l.on_response(due[0].0, secs(2), &answer(1800, Some(60)));
        assert_eq!(l.poll_timeout(), Some(secs(62)), "after min interval, not the 1800 s interval");
        assert_eq!(drain(&mut l, secs(62)).len(), 1);
        l.on_response(due[0].0, secs(63), &answer(1800, Some(60)));
        assert_eq!(l.poll_timeout(), Some(secs(1863)), "then on the interval again");
    }

    #[test]
    fn unsupported_schemes_are_disabled_and_skipped() {
        let mut l = list(&[&["wss://tracker.example", "http://a/announce"], &["wss://x"], &[" ", "http://a/announce"]]);
        let st = l.statuses();
        assert_eq!(st.len(), 3, "blank and duplicate URLs are dropped");
        let wss = st.iter().find(|s| s.url == "wss://tracker.example").unwrap();
        assert_eq!(wss.state, TrackerState::Disabled);
        assert_eq!(wss.message.as_deref(), Some("unsupported tracker scheme: wss"));
        l.start(secs(0));
        let due = drain(&mut l, secs(0));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, "http://a/announce");
    }

    #[test]
    fn tracker_count_is_bounded() {
        let urls = (0..MAX_TRACKERS + 50).map(|i| format!("http://t{i}/announce")).collect();
        assert_eq!(TrackerList::new(vec![urls], 1).statuses().len(), MAX_TRACKERS);
    }

    #[test]
    fn stale_and_unknown_indices_are_ignored() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let (t, _, _) = l.poll_announce(secs(0)).unwrap();
        l.on_response(TrackerIndex(99), secs(1), &answer(60, None));
        l.on_error(TrackerIndex(99), secs(1), failed("x"));
        l.on_response(t, secs(1), &answer(1800, None));
        l.on_error(t, secs(2), failed("late duplicate"));
        let st = l.statuses();
        assert_eq!(st[0].state, TrackerState::Working);
        assert_eq!(l.poll_timeout(), Some(secs(1801)));
    }

    #[test]
    fn tracker_id_and_warning_are_kept() {
        let mut l = list(&[&["http://a/announce"]]);
        l.start(secs(0));
        let (t, _, _) = l.poll_announce(secs(0)).unwrap();
        let mut r = answer(1800, None);
        r.tracker_id = Some("tid".into());
        r.warning = Some("be nice".into());
        l.on_response(t, secs(1), &r);
        assert_eq!(l.tracker_id(t), Some("tid"));
        let st = &l.statuses()[0];
        assert_eq!((st.peers, st.seeders, st.leechers), (1, Some(3), Some(4)));
        assert_eq!(st.message.as_deref(), Some("be nice"));
    }
}
