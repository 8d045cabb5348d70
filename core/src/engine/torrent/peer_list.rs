//! A torrent's address book: every peer address it has heard of, which of them to dial next,
//! back-off after failures, bans, and the addresses that are our own.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::engine::config::Config;
use crate::types::{ConnId, Instant};

/// Addresses remembered per torrent.
const MAX_KNOWN: usize = 2000;
/// Failed connection attempts before an address is given up.
const MAX_CONNECT_FAILS: u32 = 4;
/// Addresses peers told us we have (`yourip`), remembered to avoid dialling ourselves.
const MAX_OWN_IPS: usize = 4;
/// Wait before dialling again an address whose connection ended after its handshake.
const RECONNECT_AFTER: Duration = Duration::from_secs(60);
/// Wait before asking again for a rendezvous with one address (BEP 55): as long as before
/// redialling a peer that left, and a relay's window counts one ask per target in it.
const RENDEZVOUS_EVERY: Duration = RECONNECT_AFTER;

/// Whether an address is in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EntryState {
    /// No connection uses it.
    #[default]
    Idle,
    /// A connection (ours or its own) uses it, or it is the listening address of a peer that
    /// connected to us.
    Connected,
    /// It sent corrupt data or turned out to be us: never connected again.
    Banned,
}

/// What we know of one peer address (libtorrent's `torrent_peer`).
#[derive(Debug, Default)]
struct PeerEntry {
    state: EntryState,
    /// It is in the candidate queue. An address that connected (to us) while queued stays in
    /// the queue and is dropped when its turn comes: the flag keeps it from being queued twice.
    queued: bool,
    /// Dials that failed since it last answered.
    fails: u32,
    /// Pieces it sent that failed their hash check.
    hashfails: u32,
    /// Not to be dialled before then.
    retry_at: Instant,
    /// Only ever seen as the source of an incoming connection (an ephemeral port, not a
    /// listening one): never dialled.
    inbound_only: bool,
    /// An encrypted dial of it failed: it is dialled in plaintext (until it is said to prefer
    /// encryption, in its extended handshake or through PEX, and not `refuted`).
    plaintext: bool,
    /// Its encrypted dials were taken up again because it was said to prefer encryption.
    reenabled: bool,
    /// After that, an encrypted dial failed again: what is said of it is no longer believed
    /// (a PEX message naming it with the flag each minute would cost a failed dial each).
    refuted: bool,
    /// The peer that told us through PEX that it punches holes and was not dialled by the
    /// teller (BEP 55): whom to ask for a rendezvous when our dial fails.
    introducer: Option<ConnId>,
    /// When we last asked for a rendezvous with it.
    rendezvous_at: Option<Instant>,
}

impl PeerEntry {
    /// A dial of it may be tried (whatever its back-off says).
    fn dialable(&self) -> bool {
        self.state == EntryState::Idle
    }

    fn connect(&mut self) {
        if self.state != EntryState::Banned {
            self.state = EntryState::Connected;
        }
    }

    fn release(&mut self) {
        if self.state == EntryState::Connected {
            self.state = EntryState::Idle;
        }
    }
}

/// The peer addresses of one torrent and the queue of those to dial.
#[derive(Debug, Default)]
pub(crate) struct PeerList {
    /// Ordered, so that what is collected from it comes out in the same order on every run.
    entries: BTreeMap<SocketAddr, PeerEntry>,
    /// Addresses to dial, oldest first.
    candidates: VecDeque<SocketAddr>,
    /// Listening addresses incoming peers gave in their extended handshake, marked connected
    /// while the connection lasts.
    listen_addrs: BTreeMap<ConnId, SocketAddr>,
    /// Our addresses as peers see them (`yourip` of their extended handshakes).
    own_ips: Vec<IpAddr>,
}

impl PeerList {
    /// Addresses waiting in the candidate queue (some may have connected since).
    pub(super) fn candidates(&self) -> usize {
        self.candidates.len()
    }

    /// Whether `addr` is our own listening address (as far as we know our addresses).
    fn is_self(&self, addr: &SocketAddr, cfg: &Config) -> bool {
        let ip = addr.ip();
        addr.port() == cfg.listen_port && (ip.is_loopback() || ip.is_unspecified() || self.own_ips.contains(&ip))
    }

    /// Adds peer addresses to dial; returns how many were new to us.
    pub(super) fn add(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, cfg: &Config) -> usize {
        let mut new = 0;
        for addr in addrs {
            if addr.port() == 0 || self.is_self(&addr, cfg) || !cfg.net_policy().allows(addr) {
                continue;
            }
            if !self.entries.contains_key(&addr) {
                if self.entries.len() >= MAX_KNOWN {
                    continue;
                }
                new += 1;
            }
            let k = self.entries.entry(addr).or_default();
            k.inbound_only = false;
            // A source names it again (a tracker's answer, PEX, the DHT): one more try, after
            // the back-off of its last failure, rather than never again.
            k.fails = k.fails.min(MAX_CONNECT_FAILS - 1);
            if k.dialable() && !k.queued {
                k.queued = true;
                self.candidates.push_back(addr);
            }
        }
        new
    }

    /// Forgets every back-off: it was about our own closing (a pause, a check), not the peers.
    pub(super) fn reset_backoff(&mut self, now: Instant) {
        for k in self.entries.values_mut() {
            k.retry_at = now;
        }
    }

    /// Takes the next candidate from the queue. Returns it, marked connected, if it may be
    /// dialled now; an address still backing off goes to the back of the queue, and one in
    /// use, banned or `crowded` leaves it (it comes back with [`PeerList::requeue`]).
    pub(super) fn next_dial(&mut self, now: Instant, crowded: impl Fn(SocketAddr) -> bool) -> Option<SocketAddr> {
        let addr = self.candidates.pop_front()?;
        let k = self.entries.get_mut(&addr)?;
        if !k.dialable() || crowded(addr) {
            k.queued = false;
            return None;
        }
        if k.retry_at > now {
            self.candidates.push_back(addr);
            return None;
        }
        k.queued = false;
        k.state = EntryState::Connected;
        Some(addr)
    }

    /// Whether a queued candidate could be dialled now if there were room.
    pub(super) fn has_dialable(&self, now: Instant, crowded: impl Fn(SocketAddr) -> bool) -> bool {
        self.candidates
            .iter()
            .any(|a| self.entries.get(a).is_some_and(|k| k.dialable() && k.retry_at <= now) && !crowded(*a))
    }

    /// Whether a dial of `addr` starts with an encrypted handshake (when encryption is on but
    /// not forced): yes, unless one failed since the address last said it prefers it.
    pub(super) fn dials_encrypted(&self, addr: SocketAddr) -> bool {
        self.entries.get(&addr).is_none_or(|k| !k.plaintext)
    }

    /// An encrypted dial of `addr` failed (the peer closed, or answered garbage): it is
    /// dialled again at once, in plaintext, as libtorrent does. Not counted as a failure.
    pub(super) fn retry_plaintext(&mut self, addr: SocketAddr, now: Instant) {
        let Some(k) = self.entries.get_mut(&addr) else { return };
        if k.plaintext || k.state != EntryState::Idle {
            return;
        }
        k.plaintext = true;
        k.refuted |= k.reenabled;
        k.fails = k.fails.saturating_sub(1);
        k.retry_at = now;
        if !k.queued {
            k.queued = true;
            self.candidates.push_front(addr);
        }
    }

    /// `addr` is said to prefer encrypted connections (by itself or through PEX): the next
    /// dial of it is encrypted again, unless this was tried before and failed.
    pub(super) fn prefers_encryption(&mut self, addr: SocketAddr) {
        if let Some(k) = self.entries.get_mut(&addr).filter(|k| k.plaintext && !k.refuted) {
            k.plaintext = false;
            k.reenabled = true;
        }
    }

    /// Whether `addr` is banned.
    pub(super) fn is_banned(&self, addr: SocketAddr) -> bool {
        self.entries.get(&addr).is_some_and(|k| k.state == EntryState::Banned)
    }

    /// Bans `addr` for good (it turned out to be us).
    pub(super) fn ban(&mut self, addr: SocketAddr) {
        self.entries.entry(addr).or_default().state = EntryState::Banned;
    }

    /// Counts a piece that failed its hash check against `addr`; true if that bans it (it
    /// was the piece's only source, or has reached `hashfails_to_ban`).
    pub(super) fn hash_failed(&mut self, addr: SocketAddr, sole: bool, hashfails_to_ban: u32) -> bool {
        let k = self.entries.entry(addr).or_default();
        k.hashfails += 1;
        if sole || k.hashfails >= hashfails_to_ban {
            k.state = EntryState::Banned;
            return true;
        }
        false
    }

    /// A connection with `addr` finished its handshake.
    pub(super) fn handshaken(&mut self, addr: SocketAddr, outgoing: bool) {
        let fresh = !self.entries.contains_key(&addr);
        let k = self.entries.entry(addr).or_default();
        k.connect();
        k.inbound_only |= fresh && !outgoing;
        if outgoing {
            // It answered: earlier failures (it was down, or busy) no longer count against it.
            k.fails = 0;
        }
    }

    /// Connection `conn` with `addr` ended, after its handshake if `was_active`. `in_use`
    /// tells whether a remaining connection still has a given address.
    pub(super) fn disconnected(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        was_active: bool,
        now: Instant,
        in_use: impl Fn(SocketAddr) -> bool,
    ) {
        if let Some(k) = self.entries.get_mut(&addr) {
            k.release();
            if was_active {
                k.retry_at = now + RECONNECT_AFTER;
            } else {
                k.fails += 1;
                // 5 s, 10 s, 20 s…: a peer that is still starting up gets another chance soon.
                k.retry_at = now + Duration::from_secs(5 << (k.fails - 1).min(6));
            }
        }
        if let Some(listen) = self.listen_addrs.remove(&conn) {
            self.release_listen_addr(listen, now, in_use);
        }
    }

    /// An incoming connection `conn` from `addr` says it listens on `port`: that address is
    /// in use while the connection lasts, so we never dial it meanwhile.
    pub(super) fn listens_on(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        port: u16,
        now: Instant,
        in_use: impl Fn(SocketAddr) -> bool,
    ) {
        let listen = SocketAddr::new(addr.ip(), port);
        if listen == addr || (self.entries.len() >= MAX_KNOWN && !self.entries.contains_key(&listen)) {
            return;
        }
        self.entries.entry(listen).or_default().connect();
        if let Some(old) = self.listen_addrs.insert(conn, listen) {
            if old != listen {
                self.release_listen_addr(old, now, in_use);
            }
        }
    }

    /// An incoming peer's listening address may be dialled again once no connection uses it.
    fn release_listen_addr(&mut self, listen: SocketAddr, now: Instant, in_use: impl Fn(SocketAddr) -> bool) {
        if in_use(listen) || self.listen_addrs.values().any(|a| *a == listen) {
            return;
        }
        if let Some(k) = self.entries.get_mut(&listen) {
            k.release();
            k.retry_at = k.retry_at.max(now + RECONNECT_AFTER);
        }
    }

    /// Whether `ip` is one of our addresses as peers told us.
    pub(super) fn is_own_ip(&self, ip: IpAddr) -> bool {
        ip.is_loopback() || self.own_ips.contains(&ip)
    }

    /// `conn` told us through PEX that `addr` punches holes and was not dialled by it.
    pub(super) fn introduced_by(&mut self, addr: SocketAddr, conn: ConnId) {
        if let Some(k) = self.entries.get_mut(&addr) {
            k.introducer = Some(conn);
        }
    }

    /// The connection to ask for a rendezvous with `addr` now, if it has an introducer that
    /// is still a `relay` and none was asked within [`RENDEZVOUS_EVERY`] (recorded as asked).
    pub(super) fn rendezvous(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        relay: impl Fn(ConnId) -> bool,
    ) -> Option<ConnId> {
        let k = self.entries.get_mut(&addr)?;
        let conn = k.introducer.filter(|c| relay(*c))?;
        if k.rendezvous_at.is_some_and(|at| now - at < RENDEZVOUS_EVERY) {
            return None;
        }
        k.rendezvous_at = Some(now);
        Some(conn)
    }

    /// A relay told us to dial `addr` now (BEP 55 `connect`): marked in use, whatever its
    /// back-off, unless it is in use, banned, ours or not allowed. False if it may not be dialled.
    pub(super) fn punch(&mut self, addr: SocketAddr, cfg: &Config) -> bool {
        if addr.port() == 0 || self.is_self(&addr, cfg) || !cfg.net_policy().allows(addr) {
            return false;
        }
        if self.entries.len() >= MAX_KNOWN && !self.entries.contains_key(&addr) {
            return false;
        }
        let k = self.entries.entry(addr).or_default();
        if !k.dialable() {
            return false;
        }
        k.inbound_only = false;
        k.state = EntryState::Connected;
        true
    }

    /// A peer told us the address it sees us at (`yourip`).
    pub(super) fn learn_own_ip(&mut self, ip: IpAddr) {
        if !self.own_ips.contains(&ip) && self.own_ips.len() < MAX_OWN_IPS {
            self.own_ips.push(ip);
        }
    }

    /// Puts addresses whose retry time has come back in the candidate queue. A `lonely`
    /// torrent (no useful peer, pieces still missing) with no one else to try also takes back
    /// the addresses it had given up on.
    pub(super) fn requeue(&mut self, now: Instant, lonely: bool) {
        // With no peer at all and no one else to try, peers given up on are still worth a dial
        // now and then (their back-off reaches minutes): the alternative is waiting for the
        // next tracker announce, perhaps half an hour away.
        let stranded = lonely && self.candidates.is_empty();
        for (addr, k) in self.entries.iter_mut() {
            if k.dialable()
                && !k.inbound_only
                && !k.queued
                && (k.fails < MAX_CONNECT_FAILS || stranded)
                && k.retry_at <= now
            {
                k.queued = true;
                self.candidates.push_back(*addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::{PeerList, MAX_CONNECT_FAILS, MAX_KNOWN};
    use crate::engine::config::Config;
    use crate::types::{ConnId, Instant};

    fn cfg() -> Config {
        Config { listen_port: 6881, ..Config::default() }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), port))
    }

    fn never_crowded(_: SocketAddr) -> bool {
        false
    }

    fn unused(_: SocketAddr) -> bool {
        false
    }

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    #[test]
    fn added_addresses_are_dialled_in_order_once() {
        let mut list = PeerList::default();
        let cfg = cfg();
        assert_eq!(list.add([addr(1, 1000), addr(2, 1000), addr(1, 1000)], &cfg), 2);
        assert_eq!(list.candidates(), 2, "a repeated address is queued once");
        assert_eq!(list.next_dial(at(0), never_crowded), Some(addr(1, 1000)));
        assert_eq!(list.next_dial(at(0), never_crowded), Some(addr(2, 1000)));
        assert_eq!(list.next_dial(at(0), never_crowded), None);
        // Connected addresses are not queued again.
        assert_eq!(list.add([addr(1, 1000)], &cfg), 0);
        assert_eq!(list.candidates(), 0);
    }

    #[test]
    fn port_zero_our_own_address_and_a_full_book_are_refused() {
        let mut list = PeerList::default();
        let cfg = cfg();
        let loopback_self = SocketAddr::from((Ipv4Addr::LOCALHOST, 6881));
        assert_eq!(list.add([addr(1, 0), loopback_self], &cfg), 0);
        list.learn_own_ip(addr(9, 0).ip());
        assert_eq!(list.add([addr(9, 6881), addr(9, 6882)], &cfg), 1, "our yourip on our port is us");
        let many = (0..MAX_KNOWN as u32 + 10).map(|i| SocketAddr::from((Ipv4Addr::from(0x0b00_0000 + i), 1)));
        assert_eq!(list.add(many, &cfg), MAX_KNOWN - 1);
    }

    #[test]
    fn failed_dials_back_off_and_are_given_up() {
        let mut list = PeerList::default();
        let a = addr(1, 1000);
        list.add([a], &cfg());
        let mut now = at(0);
        for fails in 1..=MAX_CONNECT_FAILS {
            assert_eq!(list.next_dial(now, never_crowded), Some(a));
            list.disconnected(ConnId(1), a, false, now, unused);
            let backoff = 5 << (fails - 1);
            list.requeue(now + Duration::from_secs(backoff - 1), false);
            assert_eq!(list.candidates(), 0, "still backing off after {fails} failures");
            now += Duration::from_secs(backoff);
            list.requeue(now, false);
        }
        assert_eq!(list.candidates(), 0, "given up after {MAX_CONNECT_FAILS} failures");
        list.requeue(now, true);
        assert_eq!(list.candidates(), 1, "a lonely torrent tries it anyway");
    }

    #[test]
    fn an_address_named_again_gets_one_more_try_after_its_backoff() {
        let mut list = PeerList::default();
        let cfg = cfg();
        let a = addr(1, 1000);
        list.add([a], &cfg);
        let (mut now, mut failed_at) = (at(0), at(0));
        for _ in 0..MAX_CONNECT_FAILS {
            assert_eq!(list.next_dial(now, never_crowded), Some(a));
            list.disconnected(ConnId(1), a, false, now, unused);
            failed_at = now;
            now += Duration::from_secs(1000);
            list.requeue(now, false);
        }
        assert_eq!(list.candidates(), 0, "given up");
        list.add([a], &cfg);
        assert_eq!(list.next_dial(failed_at, never_crowded), None, "its back-off still runs");
        assert_eq!(list.candidates(), 1, "and it waits at the back of the queue");
        assert_eq!(list.next_dial(now, never_crowded), Some(a));
    }

    #[test]
    fn a_peer_that_answered_is_dialled_again_a_minute_after_it_left() {
        let mut list = PeerList::default();
        let a = addr(1, 1000);
        list.add([a], &cfg());
        list.next_dial(at(0), never_crowded);
        list.handshaken(a, true);
        list.disconnected(ConnId(1), a, true, at(100), unused);
        list.requeue(at(159), false);
        assert_eq!(list.candidates(), 0);
        list.requeue(at(160), false);
        assert_eq!(list.next_dial(at(160), never_crowded), Some(a));
    }

    #[test]
    fn banned_and_crowded_addresses_leave_the_queue() {
        let mut list = PeerList::default();
        let (a, b) = (addr(1, 1000), addr(2, 1000));
        list.add([a, b], &cfg());
        assert!(!list.hash_failed(a, false, 2));
        assert!(list.hash_failed(a, false, 2));
        assert!(list.is_banned(a));
        assert!(list.has_dialable(at(0), never_crowded));
        assert!(!list.has_dialable(at(0), |x| x == b));
        assert_eq!(list.next_dial(at(0), never_crowded), None, "banned");
        assert_eq!(list.next_dial(at(0), |x| x == b), None, "crowded");
        assert_eq!(list.candidates(), 0);
        list.requeue(at(0), false);
        assert_eq!(list.candidates(), 1, "the crowded one comes back, the banned one never");
        list.ban(b);
        assert_eq!(list.next_dial(at(0), never_crowded), None);
    }

    #[test]
    fn an_incoming_peer_is_never_dialled_at_its_source_port_nor_its_listening_one_while_connected() {
        let mut list = PeerList::default();
        let source = addr(1, 50_000);
        list.handshaken(source, false);
        list.listens_on(ConnId(7), source, 1000, at(0), unused);
        list.requeue(at(0), true);
        assert_eq!(list.candidates(), 0, "inbound only, and the listening address is in use");
        list.disconnected(ConnId(7), source, true, at(0), unused);
        list.requeue(at(59), false);
        assert_eq!(list.candidates(), 0);
        list.requeue(at(60), false);
        assert_eq!(list.next_dial(at(60), never_crowded), Some(addr(1, 1000)));
    }

    #[test]
    fn a_listening_address_stays_in_use_while_another_connection_has_it() {
        let mut list = PeerList::default();
        let source = addr(1, 50_000);
        let listen = addr(1, 1000);
        list.listens_on(ConnId(7), source, 1000, at(0), unused);
        list.disconnected(ConnId(7), source, true, at(0), |a| a == listen);
        list.requeue(at(1000), false);
        assert_eq!(list.candidates(), 0);
    }

    #[test]
    fn a_rendezvous_goes_to_the_introducer_once_a_minute_and_a_punch_skips_the_back_off() {
        let cfg = cfg();
        let mut list = PeerList::default();
        let a = addr(1, 1000);
        list.add([a], &cfg);
        assert_eq!(list.rendezvous(a, at(0), |_| true), None, "no introducer yet");
        list.introduced_by(a, ConnId(7));
        assert_eq!(list.rendezvous(a, at(0), |_| false), None, "the introducer cannot relay");
        assert_eq!(list.rendezvous(a, at(0), |_| true), Some(ConnId(7)));
        assert_eq!(list.rendezvous(a, at(59), |_| true), None, "once a minute per target");
        assert_eq!(list.rendezvous(a, at(60), |_| true), Some(ConnId(7)));

        // A failed dial backs off; a relay's connect dials at once all the same, once.
        assert_eq!(list.next_dial(at(0), never_crowded), Some(a));
        list.disconnected(ConnId(1), a, false, at(1), unused);
        assert!(list.punch(a, &cfg));
        assert!(!list.punch(a, &cfg), "in use");
        assert!(!list.punch(addr(2, 0), &cfg), "port 0");
    }
}
