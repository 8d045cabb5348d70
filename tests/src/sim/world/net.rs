//! The world's network: connections between hosts, dials, closes and resets, and the request
//! oracle, which needs both ends of a connection. Each direction's bytes go through a
//! `shoal_netsim::Link` (send buffer, the sender's uplink, latency, the receiver's downlink,
//! stalls while partitioned) and are read in arbitrary pieces (`shoal_netsim::Reads`).

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use rand::Rng;
use shoal_core::{CloseReason, Input, Instant};
use shoal_netsim::{Path, Reads};

use super::conn::{End, Local, SimConn};
use super::event::Ev;
use super::host::{EngineConn, HostKind};
use super::state::World;
use crate::sim::adversary::AdvAction;
use crate::sim::oracle::{self, MessageCounts};

/// How receivers read: now and then a send arrives in two pieces.
const READS: Reads = Reads::Split { longer_than: 64, p: 0.2 };

/// The virtual time of netsim (time since the world began) at `at`.
pub(super) fn virtual_time(at: Instant) -> Duration {
    Duration::from_micros(at.as_micros())
}

/// The engine's instant at virtual time `t`.
pub(super) fn instant(t: Duration) -> Instant {
    Instant::from_micros(t.as_micros() as u64)
}

impl World {
    pub(super) fn conn(&self, c: u64) -> Option<&SimConn> {
        self.conns.get(c as usize)?.as_ref()
    }

    pub(super) fn conn_mut(&mut self, c: u64) -> Option<&mut SimConn> {
        self.conns.get_mut(c as usize)?.as_mut()
    }

    pub(super) fn remove_conn(&mut self, c: u64) -> Option<SimConn> {
        let conn = self.conns.get_mut(c as usize)?.take();
        if conn.is_some() {
            self.live_conns -= 1;
        }
        conn
    }

    pub(super) fn put_conn(&mut self, c: u64, conn: SimConn) {
        if self.conns[c as usize].replace(conn).is_none() {
            self.live_conns += 1;
        }
    }

    pub(super) fn end(&self, c: u64, side: usize) -> Option<End> {
        let end = self.conn(c)?.ends[side]?;
        (end.open && self.alive(end.host, end.epoch)).then_some(end)
    }

    pub(super) fn new_conn(&mut self, host: usize, local: Local) -> u64 {
        let c = self.conns.len() as u64;
        let epoch = self.hosts[host].epoch;
        let end = End { host, epoch, local, open: true };
        self.conns.push(None);
        self.put_conn(c, SimConn { ends: [Some(end), None], dirs: Default::default() });
        c
    }

    pub(super) fn dial(&mut self, c: u64, from: usize, addr: SocketAddr) {
        let target = self.by_addr.get(&addr).copied();
        match target {
            Some(t)
                if self.hosts[t].online
                    && self.listens_tcp(t)
                    && self.hosts[t].nat.is_none()
                    && self.partitioned(from, t).is_none() =>
            {
                self.pending_target.insert(c, t);
                let lat = self.lat(from, t);
                self.schedule(lat, Ev::DialArrive { c });
            }
            Some(t) if self.listens_tcp(t) && self.partitioned(from, t).is_some() => {} // SYN lost: the dialer times out
            Some(t) if self.hosts[t].nat.is_some() => self.count("nat_drops"),          // the NAT drops the SYN
            _ => {
                let rtt = self.lat(from, from) * 2;
                self.schedule(rtt, Ev::Refused { c });
            }
        }
    }

    pub(super) fn dial_arrive(&mut self, c: u64) {
        let Some(from) = self.end(c, 0) else {
            self.remove_conn(c);
            return;
        };
        let Some(addr_target) = self.target_of(c) else { return };
        let t = addr_target;
        let refuse = !self.hosts[t].online || (self.faults_on && self.params.faults.net && self.rng.random_bool(0.05));
        let back = self.lat(t, from.host);
        if refuse {
            self.count("refused");
            self.schedule(back, Ev::Refused { c });
            return;
        }
        // A squatter dials from a different address each time (a botnet, or a host with a
        // whole prefix), so that no per-address limit stops it.
        let ip = match self.squats.contains_key(&c) {
            true => IpAddr::V4(Ipv4Addr::new(172, 16, (c / 250 % 250) as u8, (c % 250) as u8 + 1)),
            false => self.hosts[from.host].addr.ip(),
        };
        let src = SocketAddr::new(ip, self.next_port);
        self.next_port = self.next_port.checked_add(1).unwrap_or(40000);
        let epoch = self.hosts[t].epoch;
        let now = self.now;
        match &mut self.hosts[t].kind {
            HostKind::Engine(h) => {
                let Some(e) = &mut h.engine else { return };
                match e.accept(src, now) {
                    None => {
                        self.schedule(back, Ev::Refused { c });
                    }
                    Some(bc) => {
                        h.conns.insert(bc, EngineConn { c, side: 1, unacked: 0 });
                        let conn = self.conn_mut(c).expect("checked above");
                        conn.ends[1] = Some(End { host: t, epoch, local: Local::Engine(bc), open: true });
                        self.schedule(back, Ev::Connected { c });
                        self.drain(t);
                    }
                }
            }
            HostKind::Adversary(a) => {
                let acts = a.on_open(c, false);
                let conn = self.conn_mut(c).expect("checked above");
                conn.ends[1] = Some(End { host: t, epoch, local: Local::Adv, open: true });
                self.schedule(back, Ev::Connected { c });
                for act in acts {
                    self.adv_act(t, c, act);
                }
            }
        }
    }

    fn target_of(&mut self, c: u64) -> Option<usize> {
        self.pending_target.remove(&c)
    }

    pub(super) fn enqueue(&mut self, c: u64, side: usize, data: Vec<u8>) {
        let Some(conn) = self.conn_mut(c) else { return };
        let dir = &mut conn.dirs[side];
        dir.sent.feed(&data);
        let len = data.len() as u64;
        dir.link.send((data, dir.sent.counts), len);
        self.pump(c, side);
    }

    /// Moves waiting bytes into the kernel send buffer while it has room, and onto the wire.
    /// An engine sender learns what the kernel took through `self.sent`, which the caller
    /// hands to it (see [`World::drain`]).
    pub(super) fn pump(&mut self, c: u64, side: usize) {
        let now = virtual_time(self.now);
        let Some(conn) = self.conn(c) else { return };
        let (Some(from), Some(to)) = (conn.ends[side], conn.ends[1 - side]) else { return };
        let path = Path {
            latency: self.lat(from.host, to.host),
            down: Some(self.hosts[to.host].net.down.max(1)),
            sndbuf: Some(self.hosts[from.host].net.sndbuf),
        };
        self.conn_mut(c).expect("looked up above").dirs[side].link.handle_timeout(now);
        loop {
            let dir = &mut self.conns[c as usize].as_mut().expect("looked up above").dirs[side];
            let Some(sent) = dir.link.poll_transmit(now, &mut self.hosts[from.host].uplink, &path) else {
                // Full (or empty): wake when the oldest chunk has left (that may or may not
                // make room).
                if let (false, Some(at)) = (dir.waking, dir.link.poll_timeout()) {
                    dir.waking = true;
                    self.queue.push(instant(at), Ev::Room { c, side });
                }
                return;
            };
            let ((data, counts), n) = (sent.item, sent.len);
            if let Local::Engine(conn) = from.local {
                match self.sent.last_mut() {
                    Some((last, sum)) if *last == conn => *sum += n,
                    _ => self.sent.push((conn, n)),
                }
            }
            // Receivers see bytes in arbitrary pieces, as from a socket.
            let pieces = READS.pieces(&mut self.rng, data.len());
            self.queue.push(instant(sent.arrival), Ev::Deliver { c, side, data, pieces, counts });
        }
    }

    pub(super) fn deliver(
        &mut self,
        c: u64,
        side: usize,
        data: Vec<u8>,
        pieces: Vec<Range<usize>>,
        counts: MessageCounts,
    ) {
        let Some(conn) = self.conn(c) else { return };
        let (Some(from), Some(_)) = (conn.ends[side], conn.ends[1 - side]) else { return };
        let Some(to) = self.end(c, 1 - side) else { return };
        // A partition stalls the stream (TCP retransmits); bytes keep their order.
        let blocked = self.partitioned(from.host, to.host).map(|until| until + self.lat(from.host, to.host));
        let now = virtual_time(self.now);
        let link = &mut self.conn_mut(c).expect("present").dirs[side].link;
        if let Some(at) = link.hold(now, blocked.map(virtual_time)) {
            self.schedule_at(instant(at), Ev::Deliver { c, side, data, pieces, counts });
            return;
        }
        for (i, piece) in pieces.into_iter().enumerate() {
            // An earlier piece may have closed the connection.
            let to = match i {
                0 => to,
                _ => match self.end(c, 1 - side) {
                    Some(to) => to,
                    None => break,
                },
            };
            self.receive(c, to, &data[piece]);
        }
        if let Some(conn) = self.conn_mut(c) {
            conn.dirs[side].read = counts;
        }
        self.check_requests(c);
    }

    /// The request oracle on connection `c`, if both ends are live engines that know it.
    pub(super) fn check_requests(&mut self, c: u64) {
        let Some(conn) = self.conn(c) else { return };
        let (Some(a), Some(b)) = (conn.ends[0], conn.ends[1]) else { return };
        let figures = |w: &World, e: End| -> Option<oracle::End> {
            let Local::Engine(id) = e.local else { return None };
            if !e.open || !w.alive(e.host, e.epoch) {
                return None;
            }
            let h = w.engine_host(e.host)?;
            let r = h.engine.as_ref()?.peer_requests(h.torrent?, id)?;
            Some(oracle::End { queued: r.queued, outstanding: r.outstanding })
        };
        let (Some(fa), Some(fb)) = (figures(self, a), figures(self, b)) else { return };
        let a_to_b = conn.dirs[0].sent.counts.minus(&conn.dirs[0].read);
        let b_to_a = conn.dirs[1].sent.counts.minus(&conn.dirs[1].read);
        self.request_checks += 1;
        let limits = oracle::Limits {
            max_requests_per_peer: self.config.max_requests_per_peer,
            max_peer_requests: self.config.max_peer_requests,
        };
        let names =
            [&format_args!("host {} (conn {c})", a.host) as &dyn std::fmt::Display, &format_args!("host {}", b.host)];
        for v in oracle::check_requests(limits, names, [fa, fb], a_to_b, b_to_a) {
            self.violation(v);
        }
    }

    /// Hands bytes that arrived on `c` from `side` to the other end's owner.
    fn receive(&mut self, c: u64, to: End, data: &[u8]) {
        let now = self.now;
        self.trace.mix(0x30 ^ (data.len() as u64) << 8);
        match to.local {
            Local::Engine(conn) => {
                if let Some(e) = &mut self.eh(to.host).engine {
                    e.handle(Input::PeerBytes(conn, data), now);
                }
                self.drain(to.host);
            }
            Local::Adv => {
                let max = self.config.max_requests_per_peer;
                let tt = self.tt.clone();
                let HostKind::Adversary(a) = &mut self.hosts[to.host].kind else { return };
                let (acts, v) = a.on_data(c, data, &tt, max);
                if let Some(v) = v {
                    self.violation(format!("adversary {}: {v}", to.host));
                }
                for act in acts {
                    self.adv_act(to.host, c, act);
                }
            }
        }
    }

    pub(super) fn adv_act(&mut self, host: usize, c: u64, act: AdvAction) {
        let Some(conn) = self.conn(c) else { return };
        let side = match conn.ends {
            [Some(e), _] if e.host == host => 0,
            _ => 1,
        };
        match act {
            AdvAction::Send(data) if !data.is_empty() => self.enqueue(c, side, data),
            AdvAction::Send(_) => {}
            AdvAction::Reset => self.reset(c),
        }
    }

    /// `side` closed its end: the other end learns it once the bytes already sent arrive.
    pub(super) fn close_from(&mut self, c: u64, side: usize) {
        let Some(conn) = self.conn_mut(c) else { return };
        if let Some(e) = &mut conn.ends[side] {
            e.open = false;
        }
        conn.dirs[side].link.discard_unsent();
        let other_open = conn.ends[1 - side].is_some_and(|e| e.open);
        if !other_open {
            self.remove_conn(c);
            return;
        }
        let at = instant(conn.dirs[side].link.last_arrival()).max(self.now) + Duration::from_millis(1);
        self.schedule_at(at, Ev::Fin { c, side });
    }

    /// Tells the local owner of end `side` that the connection is gone, and why.
    pub(super) fn close_local(&mut self, c: u64, side: usize, reason: CloseReason) {
        let Some(end) = self.end(c, side) else { return };
        if let Some(conn) = self.conn_mut(c) {
            if let Some(e) = &mut conn.ends[side] {
                e.open = false;
            }
            if conn.ends.iter().all(|e| e.is_none_or(|e| !e.open)) {
                self.remove_conn(c);
            }
        }
        let now = self.now;
        match end.local {
            Local::Engine(conn) => {
                let h = self.eh(end.host);
                h.conns.remove(&conn);
                if let Some(e) = &mut h.engine {
                    e.handle(Input::Closed(conn, reason), now);
                }
                self.drain(end.host);
            }
            Local::Adv => {
                if let HostKind::Adversary(a) = &mut self.hosts[end.host].kind {
                    a.on_closed(c);
                }
                // A squatter comes back within seconds to take the slot again.
                if let Some(target) = self.squats.remove(&c) {
                    self.count("squats_closed");
                    let after = Duration::from_millis(self.rng.random_range(1000..5000));
                    self.schedule(after, Ev::AdvDial { host: end.host, target });
                }
            }
        }
    }

    /// Resets a connection: bytes in flight are lost; each live end hears of it.
    pub(super) fn reset(&mut self, c: u64) {
        let Some(conn) = self.remove_conn(c) else { return };
        for (side, end) in conn.ends.iter().enumerate() {
            let Some(end) = end else { continue };
            if !end.open || !self.alive(end.host, end.epoch) {
                continue;
            }
            // Re-insert a shell so close_local can find the end, then let it clean up.
            let mut ends = [None, None];
            ends[side] = Some(*end);
            self.put_conn(c, SimConn { ends, dirs: Default::default() });
            self.close_local(c, side, CloseReason::Io(ErrorKind::ConnectionReset));
            self.remove_conn(c);
        }
    }
}
