//! uTP over the simulator's datagram paths (`shoal_netsim::DatagramPath`, `Bottleneck`): a
//! byte-exact transfer through loss, reordering and duplication, and LEDBAT giving way to a
//! loss-based flow on a shared bottleneck, and packet-size discovery finding a path's MTU. Everything runs on virtual time from one seed.

use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shoal_core::utp::{UtpConfig, UtpConnId, UtpEvent, UtpSocket};
use shoal_core::Instant;
use shoal_netsim::{Bottleneck, DatagramPath, PathMtu, Timeline};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
/// IPv4 and UDP headers, counted on the bottleneck.
const UDP_OVERHEAD: u64 = 28;

fn a_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 6881))
}

fn b_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 6881))
}

fn instant(d: Duration) -> Instant {
    Instant::from_micros(d.as_micros() as u64)
}

fn duration(i: Instant) -> Duration {
    Duration::from_micros(i.as_micros())
}

/// What the timeline carries.
enum Event {
    /// A uTP datagram reaches B (from A) or A (from B).
    ToB(Vec<u8>),
    ToA(Vec<u8>),
    /// The competing flow: its packet reaches B, its ACK reaches A, or A learns it was lost.
    RenoArrive,
    RenoAck,
    RenoLoss(u64),
    /// The competing flow starts.
    RenoStart,
}

/// A TCP-like bulk flow from A to B, loss-based (Reno's AIMD): the window grows by one packet
/// per round trip (doubling in slow start) and halves once per loss event.
struct Reno {
    cwnd: f64,
    ssthresh: f64,
    in_flight: u32,
    next: u64,
    /// Losses of packets sent before this one belong to the loss event already handled.
    recover: u64,
    delivered: u64,
    running: bool,
}

/// The size of the competing flow's packets (a TCP segment on a 1500-byte MTU).
const RENO_PACKET: u64 = 1500;

/// Two uTP sockets A and B; A's datagrams to B may cross a bottleneck shared with a Reno flow.
struct World {
    now: Duration,
    rng: ChaCha8Rng,
    a: UtpSocket,
    b: UtpSocket,
    ab: DatagramPath,
    ba: DatagramPath,
    bottleneck: Option<Bottleneck>,
    /// The MTU of A's path to B, if it is narrower than the datagrams.
    mtu: Option<PathMtu>,
    timeline: Timeline<Event>,
    reno: Reno,
    /// The largest queueing delay of the bottleneck seen since the last reset.
    max_queue: Duration,
}

impl World {
    fn new(seed: u64, ab: DatagramPath, ba: DatagramPath, bottleneck: Option<Bottleneck>) -> World {
        World {
            now: SEC,
            rng: ChaCha8Rng::seed_from_u64(seed),
            a: UtpSocket::new(UtpConfig::default(), seed.wrapping_mul(2)),
            b: UtpSocket::new(UtpConfig::default(), seed.wrapping_mul(2) + 1),
            ab,
            ba,
            bottleneck,
            mtu: None,
            timeline: Timeline::default(),
            reno: Reno {
                cwnd: 2.0,
                ssthresh: f64::MAX,
                in_flight: 0,
                next: 0,
                recover: 0,
                delivered: 0,
                running: false,
            },
            max_queue: Duration::ZERO,
        }
    }

    /// Sockets whose host route allows IP packets of `host_mtu` bytes, A's path to B `mtu`.
    fn with_mtu(seed: u64, path: DatagramPath, host_mtu: usize, mtu: PathMtu) -> World {
        let mut w = World::new(seed, path, path, None);
        let config = UtpConfig { path_mtu: Some(host_mtu), ..UtpConfig::default() };
        w.a = UtpSocket::new(config.clone(), seed.wrapping_mul(2));
        w.b = UtpSocket::new(config, seed.wrapping_mul(2) + 1);
        w.mtu = Some(mtu);
        w
    }

    /// Puts what both sockets want to send on their paths.
    fn carry(&mut self) {
        while let Some((to, bytes)) = self.a.poll_transmit() {
            assert_eq!(to, b_addr());
            if self.mtu.as_mut().is_some_and(|m| !m.carries(bytes.len() + UDP_OVERHEAD as usize)) {
                continue;
            }
            let departed = match &mut self.bottleneck {
                Some(link) => match link.enqueue(self.now, bytes.len() as u64 + UDP_OVERHEAD) {
                    Some(t) => t,
                    None => continue,
                },
                None => self.now,
            };
            for at in self.ab.arrivals(departed, &mut self.rng) {
                self.timeline.push(at, Event::ToB(bytes.clone()));
            }
        }
        while let Some((to, bytes)) = self.b.poll_transmit() {
            assert_eq!(to, a_addr());
            for at in self.ba.arrivals(self.now, &mut self.rng) {
                self.timeline.push(at, Event::ToA(bytes.clone()));
            }
        }
        if let Some(link) = &self.bottleneck {
            self.max_queue = self.max_queue.max(link.queue_delay(self.now));
        }
    }

    fn reno_send(&mut self) {
        let Some(link) = &mut self.bottleneck else { return };
        while self.reno.running && f64::from(self.reno.in_flight) < self.reno.cwnd {
            let seq = self.reno.next;
            self.reno.next += 1;
            self.reno.in_flight += 1;
            match link.enqueue(self.now, RENO_PACKET) {
                Some(departed) => self.timeline.push(departed + self.ab.latency, Event::RenoArrive),
                // The sender learns of the loss from duplicate ACKs about a round trip later.
                None => {
                    let learn = self.now + link.queue_delay(self.now) + self.ab.latency + self.ba.latency;
                    self.timeline.push(learn, Event::RenoLoss(seq));
                }
            }
        }
    }

    /// Runs the next event (a delivery or a timer); false if there is none before `limit`.
    fn step(&mut self, limit: Duration) -> bool {
        self.carry();
        let timers = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().map(duration).min();
        let next = self.timeline.next_at().into_iter().chain(timers).min();
        let Some(next) = next.filter(|&t| t <= limit) else { return false };
        self.now = self.now.max(next);
        let now = instant(self.now);
        if let Some((_, event)) = self.timeline.pop_due(self.now) {
            match event {
                Event::ToB(bytes) => self.b.handle_datagram(a_addr(), &bytes, now),
                Event::ToA(bytes) => self.a.handle_datagram(b_addr(), &bytes, now),
                Event::RenoArrive => {
                    self.reno.delivered += RENO_PACKET;
                    self.timeline.push(self.now + self.ba.latency, Event::RenoAck);
                }
                Event::RenoAck => {
                    self.reno.in_flight -= 1;
                    let r = &mut self.reno;
                    r.cwnd += if r.cwnd < r.ssthresh { 1.0 } else { 1.0 / r.cwnd };
                    self.reno_send();
                }
                Event::RenoLoss(seq) => {
                    self.reno.in_flight -= 1;
                    if seq >= self.reno.recover {
                        self.reno.ssthresh = (self.reno.cwnd / 2.0).max(2.0);
                        self.reno.cwnd = self.reno.ssthresh;
                        self.reno.recover = self.reno.next;
                    }
                    self.reno_send();
                }
                Event::RenoStart => {
                    self.reno.running = true;
                    self.reno_send();
                }
            }
        } else {
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
        }
        self.carry();
        true
    }

    /// Opens a connection from A to B (A's first bytes confirm it); returns (A's, B's) ids.
    fn open(&mut self) -> (UtpConnId, UtpConnId) {
        let ca = self.a.connect(b_addr(), instant(self.now)).expect("room for a connection");
        let limit = self.now + 60 * SEC;
        let mut sent_hello = false;
        loop {
            while let Some(e) = self.a.poll_event() {
                if e == UtpEvent::Connected(ca) {
                    assert_eq!(self.a.write(ca, b"hello", instant(self.now)), 5);
                    sent_hello = true;
                }
            }
            while let Some(e) = self.b.poll_event() {
                if let UtpEvent::Incoming(cb, from) = e {
                    assert!(sent_hello && from == a_addr());
                    assert_eq!(self.b.read(cb, 5, instant(self.now)), b"hello");
                    return (ca, cb);
                }
            }
            assert!(self.step(limit), "the connection did not open");
        }
    }
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(salt) ^ (i >> 10) as u8).collect()
}

#[test]
fn a_mebibyte_each_way_survives_loss_reordering_and_duplication() {
    let path = DatagramPath { latency: 75 * MS, jitter: 20 * MS, loss: 0.01, duplicate: 0.01 };
    for seed in 1..=3 {
        let mut w = World::new(seed, path, path, None);
        let (ca, cb) = w.open();
        let (ab, ba) = (pattern(1 << 20, 1), pattern(1 << 20, 2));
        let (mut sent_ab, mut sent_ba, mut got_b, mut got_a) = (0, 0, Vec::new(), Vec::new());
        let limit = w.now + 300 * SEC;
        while got_b.len() < ab.len() || got_a.len() < ba.len() {
            let now = instant(w.now);
            sent_ab += w.a.write(ca, &ab[sent_ab..], now);
            sent_ba += w.b.write(cb, &ba[sent_ba..], now);
            got_b.extend(w.b.read(cb, usize::MAX, now));
            got_a.extend(w.a.read(ca, usize::MAX, now));
            assert!(w.step(limit), "seed {seed}: stuck with {} and {} bytes", got_b.len(), got_a.len());
        }
        assert!(got_b == ab && got_a == ba, "seed {seed}: bytes differ");
        let stats = w.a.stats(ca).expect("still open");
        assert!(stats.resent > 0, "seed {seed}: 1% loss made nothing resend? {stats:?}");
        let rtt = stats.rtt.expect("measured");
        assert!(rtt >= 150 * MS && rtt < 400 * MS, "seed {seed}: {stats:?}");
    }
}

#[test]
fn ledbat_gives_way_to_a_loss_based_flow_on_a_shared_bottleneck() {
    // 1 MB/s, 25 ms each way, a queue of 300 ms: Reno fills it, which LEDBAT (100 ms target)
    // must read as congestion.
    let rate = 1_000_000;
    let path = DatagramPath::clean(25 * MS);
    let mut w = World::new(7, path, path, Some(Bottleneck::new(rate, rate * 3 / 10)));
    let (ca, cb) = w.open();
    let data = vec![0x5a; 1 << 20];
    let mut delivered_utp = 0u64;
    let mut run = |w: &mut World, until: Duration| {
        while w.now < until {
            let now = instant(w.now);
            while w.a.write(ca, &data, now) > 0 {}
            delivered_utp += w.b.read(cb, usize::MAX, now).len() as u64;
            assert!(w.step(until + SEC), "stuck");
        }
        delivered_utp
    };

    // Alone, uTP fills the link and keeps the queue near its target.
    let t0 = w.now;
    let before = run(&mut w, t0 + 5 * SEC);
    let queue_before = w.max_queue;
    w.max_queue = Duration::ZERO;
    let alone = run(&mut w, t0 + 15 * SEC) - before;
    let alone_rate = alone as f64 / 10.0;
    assert!(alone_rate > 0.7 * rate as f64, "alone uTP moved {alone_rate} B/s on a {rate} B/s link");
    // Slow start and LEDBAT's probing overshoot the 100 ms target for a moment, never to the
    // 300 ms a loss-based flow fills.
    assert!(w.max_queue < 250 * MS, "alone uTP kept the queue at {:?} (warm-up: {queue_before:?})", w.max_queue);

    // Reno starts; once it has filled the queue, measure both flows for 20 s.
    w.timeline.push(w.now, Event::RenoStart);
    let settle = run(&mut w, t0 + 25 * SEC);
    let reno_settle = w.reno.delivered;
    w.max_queue = Duration::ZERO;
    let utp = run(&mut w, t0 + 45 * SEC) - settle;
    let reno = w.reno.delivered - reno_settle;
    let share = utp as f64 / (utp + reno) as f64;
    assert!(w.max_queue > 100 * MS, "Reno's queue stayed under the target: {:?}", w.max_queue);
    assert!(share < 0.1, "uTP kept {:.1}% of the link beside Reno ({utp} vs {reno} bytes)", share * 100.0);
    assert!(reno as f64 > 0.8 * 20.0 * rate as f64, "Reno moved only {reno} bytes in 20 s");
    assert!(w.a.stats(ca).is_some(), "uTP yields but stays connected");
}

/// Sends `len` bytes from A to B; returns them as B read them.
fn transfer(
    w: &mut World,
    ca: UtpConnId,
    cb: UtpConnId,
    data: &[u8],
    mut midway: impl FnMut(&mut World, usize),
) -> Vec<u8> {
    let (mut sent, mut got) = (0, Vec::new());
    let limit = w.now + 300 * SEC;
    while got.len() < data.len() {
        let now = instant(w.now);
        sent += w.a.write(ca, &data[sent..], now);
        got.extend(w.b.read(cb, usize::MAX, now));
        midway(w, got.len());
        assert!(w.step(limit), "stuck with {} of {} bytes", got.len(), data.len());
    }
    got
}

#[test]
fn packet_size_discovery_finds_the_paths_mtu() {
    // IPv4 hosts: 20 bytes of IP, 8 of UDP and 20 of uTP header around each payload. Paths
    // that swallow too-big datagrams (as a DF probe meets them).
    let path = DatagramPath::clean(20 * MS);
    for (host, mtu) in [(1500, 1400), (1500, 1500), (9000, 4000)] {
        let mut w = World::with_mtu(5, path, host, PathMtu::new(mtu, false));
        let (ca, cb) = w.open();
        assert_eq!(w.a.stats(ca).unwrap().payload, 1200, "starts conservative");
        let data = pattern(8 << 20, 3);
        assert!(transfer(&mut w, ca, cb, &data, |_, _| {}) == data, "{host}/{mtu}: bytes differ");
        let fits = mtu - 48;
        let ceiling = host - 48 - 34; // room for the largest selective ACK
        let found = w.a.stats(ca).unwrap().payload;
        assert!(found <= fits.min(ceiling) && found + 16 >= fits.min(ceiling), "{host}/{mtu}: settled on {found}");
    }
}

#[test]
fn a_narrower_path_mid_transfer_costs_a_resend_not_the_connection() {
    // A route change narrows the path from 9000 to 1500 bytes while a window of large packets
    // is in flight: the first too-big one is lost and reported, the kernel fragments the rest
    // (Linux's default for a UDP socket), and the transfer completes.
    let path = DatagramPath::clean(20 * MS);
    let mut w = World::with_mtu(9, path, 9000, PathMtu::new(9000, true));
    let (ca, cb) = w.open();
    let data = pattern(16 << 20, 4);
    let mut narrowed = false;
    let got = transfer(&mut w, ca, cb, &data, |w, got| {
        if !narrowed && got >= 4 << 20 {
            assert!(w.a.stats(ca).unwrap().payload > 4000, "discovery went past the floor first");
            w.mtu.as_mut().unwrap().set_mtu(1500);
            narrowed = true;
        }
    });
    assert!(narrowed && got == data, "bytes differ");
    assert!(w.a.stats(ca).unwrap().resent > 0, "the too-big packet was sent again");
}
