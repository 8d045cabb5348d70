//! Two uTP sockets wired to each other, on a virtual clock.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Packet, PacketType, UtpCloseReason, UtpConfig, UtpConnId, UtpEvent, UtpSocket};
use crate::types::Instant;

const MS: Duration = Duration::from_millis(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// A datagram on its way.
struct Flight {
    at: Instant,
    to_b: bool,
    bytes: Vec<u8>,
}

/// Decides whether a datagram is lost (`true` for one from A to B, and its bytes).
type DropRule = Box<dyn FnMut(bool, &[u8]) -> bool>;

/// Two sockets `a` and `b` with a fixed one-way latency; `drop` may discard datagrams.
struct Pair {
    a: UtpSocket,
    b: UtpSocket,
    now: Instant,
    latency: Duration,
    flights: Vec<Flight>,
    /// Drops a datagram (A to B when the flag is true) when it returns true.
    drop: DropRule,
    events_a: Vec<UtpEvent>,
    events_b: Vec<UtpEvent>,
}

impl Pair {
    fn new(config: UtpConfig, latency: Duration) -> Pair {
        Pair {
            a: UtpSocket::new(config.clone(), 1),
            b: UtpSocket::new(config, 2),
            now: Instant::from_micros(1_000_000),
            latency,
            flights: Vec::new(),
            drop: Box::new(|_, _| false),
            events_a: Vec::new(),
            events_b: Vec::new(),
        }
    }

    /// Collects what both sockets want to send and say.
    fn drain(&mut self) {
        for (to_b, socket) in [(true, &mut self.a), (false, &mut self.b)] {
            while let Some((to, bytes)) = socket.poll_transmit() {
                assert_eq!(to, if to_b { addr(2) } else { addr(1) });
                if !(self.drop)(to_b, &bytes) {
                    self.flights.push(Flight { at: self.now + self.latency, to_b, bytes });
                }
            }
        }
        self.events_a.extend(std::iter::from_fn(|| self.a.poll_event()));
        self.events_b.extend(std::iter::from_fn(|| self.b.poll_event()));
    }

    /// Delivers the next datagram or runs the next timer, whichever is first; false when
    /// nothing is left to do before `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        self.drain();
        let flight = self.flights.iter().enumerate().min_by_key(|(i, f)| (f.at, *i)).map(|(i, f)| (i, f.at));
        let timer = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
        let next = flight.map(|(_, at)| at).into_iter().chain(timer).min();
        let Some(next) = next.filter(|&t| t <= limit) else { return false };
        self.now = self.now.max(next);
        match flight {
            Some((i, at)) if at == next => {
                let f = self.flights.remove(i);
                if f.to_b {
                    self.b.handle_datagram(addr(1), &f.bytes, self.now);
                } else {
                    self.a.handle_datagram(addr(2), &f.bytes, self.now);
                }
            }
            _ => {
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    /// Steps until `done` holds; panics if it does not within `budget` of virtual time.
    fn run_until(&mut self, budget: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let limit = self.now + budget;
        while !done(self) {
            assert!(self.step(limit), "stuck at {:?}", self.now);
        }
    }

    /// Opens a connection from A to B, A's first write confirming it; returns (A's, B's) ids.
    fn open(&mut self, first: &[u8]) -> (UtpConnId, UtpConnId) {
        let ca = self.a.connect(addr(2), self.now).unwrap();
        self.run_until(10 * SEC, |p| p.events_a.contains(&UtpEvent::Connected(ca)));
        assert_eq!(self.a.write(ca, first, self.now), first.len());
        let mut cb = None;
        self.run_until(10 * SEC, |p| {
            cb = p.events_b.iter().find_map(|e| match e {
                UtpEvent::Incoming(c, from) if *from == addr(1) => Some(*c),
                _ => None,
            });
            cb.is_some()
        });
        (ca, cb.unwrap())
    }
}

const SEC: Duration = Duration::from_secs(1);

/// Deterministic test bytes.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt).wrapping_add((i >> 11) as u8)).collect()
}

/// Moves `data` from one side to the other while the other reads; both sides at once.
fn exchange(p: &mut Pair, (ca, cb): (UtpConnId, UtpConnId), to_b: &[u8], to_a: &[u8], budget: Duration) {
    let (mut sent_ab, mut sent_ba) = (0, 0);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    p.run_until(budget, |p| {
        sent_ab += p.a.write(ca, &to_b[sent_ab..], p.now);
        sent_ba += p.b.write(cb, &to_a[sent_ba..], p.now);
        got_b.extend(p.b.read(cb, usize::MAX, p.now));
        got_a.extend(p.a.read(ca, usize::MAX, p.now));
        got_b.len() >= to_b.len() && got_a.len() >= to_a.len()
    });
    assert!(got_b == to_b, "A to B differs ({} of {} bytes)", got_b.len(), to_b.len());
    assert!(got_a == to_a, "B to A differs ({} of {} bytes)", got_a.len(), to_a.len());
}

#[test]
fn a_mebibyte_each_way_arrives_byte_exact() {
    let mut p = Pair::new(UtpConfig::default(), 20 * MS);
    let ids = p.open(b"hello");
    assert_eq!(p.b.read(ids.1, 100, p.now), b"hello");
    let (ab, ba) = (pattern(1 << 20, 1), pattern(1 << 20, 2));
    exchange(&mut p, ids, &ab, &ba, 120 * SEC);
    let stats = p.a.stats(ids.0).unwrap();
    assert_eq!(stats.resent, 0, "nothing was lost");
    assert!(stats.rtt.unwrap() >= 40 * MS && stats.cwnd > 2 * 1200, "{stats:?}");
}

#[test]
fn fin_ends_the_connection_after_the_last_byte_is_read() {
    let mut p = Pair::new(UtpConfig::default(), 5 * MS);
    let (ca, cb) = p.open(b"x");
    let data = pattern(10_000, 3);
    assert_eq!(p.a.write(ca, &data, p.now), data.len());
    p.a.close(ca, p.now);
    assert_eq!(p.a.write(ca, b"late", p.now), 0, "nothing after close");
    p.run_until(10 * SEC, |p| p.a.connections() == 0);
    assert!(p.events_b.iter().all(|e| !matches!(e, UtpEvent::Closed(..))), "not before the bytes are read");
    let got = p.b.read(cb, usize::MAX, p.now);
    assert_eq!(&got[..1], b"x");
    assert!(got[1..] == data[..]);
    p.drain();
    assert_eq!(p.events_b.last(), Some(&UtpEvent::Closed(cb, UtpCloseReason::Finished)));
    assert_eq!(p.b.connections(), 0);
    assert!(p.events_a.iter().all(|e| !matches!(e, UtpEvent::Closed(..))), "a local close says nothing");
}

#[test]
fn reset_ends_both_an_aborted_and_a_forgotten_connection() {
    let mut p = Pair::new(UtpConfig::default(), 5 * MS);
    let (ca, cb) = p.open(b"x");
    p.b.abort(cb, p.now);
    p.run_until(SEC, |p| p.events_a.contains(&UtpEvent::Closed(ca, UtpCloseReason::Reset)));
    assert_eq!((p.a.connections(), p.b.connections()), (0, 0));

    // B restarts and forgets the connection: A's next packet is answered with RESET.
    let (ca, _) = p.open(b"y");
    p.b = UtpSocket::new(UtpConfig::default(), 9);
    p.a.write(ca, b"more", p.now);
    p.run_until(SEC, |p| p.events_a.contains(&UtpEvent::Closed(ca, UtpCloseReason::Reset)));
}

#[test]
fn an_unanswered_syn_times_out() {
    let mut p = Pair::new(UtpConfig::default(), 5 * MS);
    p.drop = Box::new(|_, _| true);
    let start = p.now;
    let ca = p.a.connect(addr(2), p.now).unwrap();
    p.run_until(60 * SEC, |p| p.events_a.contains(&UtpEvent::Closed(ca, UtpCloseReason::ConnectTimedOut)));
    assert_eq!(p.now - start, 7 * SEC, "1 s, then 2 s and 4 s for the two resends");
}

#[test]
fn a_syn_flood_never_holds_more_than_the_half_open_limit() {
    let config = UtpConfig { max_half_open: 20, ..UtpConfig::default() };
    let mut b = UtpSocket::new(config, 3);
    let now = Instant::from_micros(1);
    for i in 0..10_000u32 {
        let syn = Packet {
            header: super::Header {
                kind: PacketType::Syn,
                conn_id: i as u16,
                timestamp: 0,
                timestamp_diff: 0,
                wnd_size: 1 << 20,
                seq_nr: 7,
                ack_nr: 0,
            },
            sack: None,
            payload: &[],
        };
        b.handle_datagram(SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 6881)), &syn.encode(), now);
        assert!(b.connections() <= 20);
        while b.poll_transmit().is_some() {}
    }
    assert_eq!((b.connections(), b.half_open()), (20, 20));
    assert_eq!(b.poll_event(), None, "the user never hears of unconfirmed peers");
    let deadline = b.poll_timeout().unwrap();
    b.handle_timeout(deadline);
    assert_eq!(b.connections(), 0, "unconfirmed peers are forgotten");
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn a_full_receive_window_stops_the_sender_until_the_reader_reads() {
    let config = UtpConfig { recv_buffer: 64 * 1024, ..UtpConfig::default() };
    let mut p = Pair::new(config, 10 * MS);
    let (ca, cb) = p.open(b"z");
    assert_eq!(p.b.read(cb, 1, p.now), b"z");
    let data = pattern(200 * 1024, 4);
    let mut sent = 0;
    // B reads nothing: A fills B's window and stops.
    p.run_until(30 * SEC, |p| {
        sent += p.a.write(ca, &data[sent..], p.now);
        p.a.stats(ca).unwrap().peer_window < 1200 && p.flights.is_empty()
    });
    let stalled_at = p.now;
    assert!(!p.step(p.now + 10 * SEC), "nothing moves while the window is closed");
    assert!(p.a.connections() == 1 && p.b.connections() == 1);
    let mut got = p.b.read(cb, usize::MAX, p.now);
    assert_eq!(got.len(), 64 * 1024);
    p.run_until(30 * SEC, |p| {
        sent += p.a.write(ca, &data[sent..], p.now);
        got.extend(p.b.read(cb, usize::MAX, p.now));
        got.len() == data.len()
    });
    assert!(got == data);
    assert!(p.now - stalled_at < 5 * SEC, "the window update reopened it, no probe needed");
}

#[test]
fn a_lost_window_update_is_recovered_by_the_probe() {
    let config = UtpConfig { recv_buffer: 16 * 1024, ..UtpConfig::default() };
    let mut p = Pair::new(config, 10 * MS);
    let (ca, cb) = p.open(b"z");
    assert_eq!(p.b.read(cb, 1, p.now), b"z");
    let data = pattern(40 * 1024, 5);
    let mut sent = 0;
    p.run_until(30 * SEC, |p| {
        sent += p.a.write(ca, &data[sent..], p.now);
        p.a.stats(ca).unwrap().peer_window < 1200 && p.flights.is_empty()
    });
    // B's window update after the read is lost.
    p.drop = Box::new(|to_b, _| !to_b);
    let mut got = p.b.read(cb, usize::MAX, p.now);
    p.drain();
    p.drop = Box::new(|_, _| false);
    let before = p.now;
    p.run_until(60 * SEC, |p| {
        sent += p.a.write(ca, &data[sent..], p.now);
        got.extend(p.b.read(cb, usize::MAX, p.now));
        got.len() == data.len()
    });
    assert!(got == data);
    assert!(p.now - before >= UtpConfig::default().zero_window_probe, "the probe did it");
}

#[test]
fn wild_numbers_and_garbage_are_dropped() {
    let mut p = Pair::new(UtpConfig::default(), 5 * MS);
    let (ca, cb) = p.open(b"ok");
    // A packet on B's route whose ACK is far ahead of anything B sent, and one whose sequence
    // number is far ahead of anything A could have sent.
    let recv_id = {
        let mut bytes = None;
        p.a.write(ca, b"!", p.now);
        if let Some((_, b)) = p.a.poll_transmit() {
            bytes = Some(b);
        }
        Packet::decode(&bytes.unwrap()).unwrap().header
    };
    for (seq, ack) in
        [(recv_id.seq_nr, recv_id.ack_nr.wrapping_add(30_000)), (recv_id.seq_nr.wrapping_add(20_000), recv_id.ack_nr)]
    {
        let forged =
            Packet { header: super::Header { seq_nr: seq, ack_nr: ack, ..recv_id }, sack: None, payload: b"evil" };
        p.b.handle_datagram(addr(1), &forged.encode(), p.now);
    }
    for junk in [&b""[..], b"d1:ad2:id20:", &[0x01; 19], &[0xff; 64]] {
        p.b.handle_datagram(addr(1), junk, p.now);
    }
    assert_eq!(p.b.read(cb, 100, p.now), b"ok");
    p.a.write(ca, b"?", p.now);
    let mut got = Vec::new();
    p.run_until(10 * SEC, |p| {
        got.extend(p.b.read(cb, 100, p.now));
        got.len() >= 2
    });
    assert_eq!(got, b"!?", "the connection carries on; 'evil' never shows");
}

#[test]
fn a_burst_of_data_handed_in_together_gets_one_ack() {
    let mut p = Pair::new(UtpConfig::default(), 10 * MS);
    let (ca, cb) = p.open(b"hi");
    p.run_until(SEC, |p| p.flights.is_empty());
    assert_eq!(p.b.read(cb, usize::MAX, p.now), b"hi");
    p.a.write(ca, &pattern(20_000, 3), p.now);
    let burst: Vec<Vec<u8>> = std::iter::from_fn(|| p.a.poll_transmit().map(|(_, d)| d)).collect();
    assert!(burst.len() >= 2, "the window allows a burst: {}", burst.len());
    let last = Packet::decode(&burst[burst.len() - 1]).unwrap().header.seq_nr;
    for d in &burst {
        p.b.handle_datagram(addr(1), d, p.now);
    }
    let acks: Vec<Vec<u8>> = std::iter::from_fn(|| p.b.poll_transmit().map(|(_, d)| d)).collect();
    assert_eq!(acks.len(), 1, "one ACK for the burst");
    let ack = Packet::decode(&acks[0]).unwrap().header;
    assert_eq!((ack.kind, ack.ack_nr), (PacketType::State, last));
    // Handed in one by one, each datagram is answered before the next arrives.
    let more: Vec<Vec<u8>> = {
        p.a.handle_datagram(addr(2), &acks[0], p.now);
        std::iter::from_fn(|| p.a.poll_transmit().map(|(_, d)| d)).collect()
    };
    assert!(more.len() >= 2);
    for d in &more {
        p.b.handle_datagram(addr(1), d, p.now);
        assert_eq!(std::iter::from_fn(|| p.b.poll_transmit()).count(), 1);
    }
}
