//! One uTP connection: its phase, its two halves, its timers and congestion control.

use std::net::SocketAddr;

use super::config::UtpConfig;
use super::events::{UtpCloseReason, UtpConnId, UtpConnStats, UtpEvent};
use super::ledbat::{Ledbat, Rtt};
use super::mtu::PathMtu;
use super::packet::{encode, Header, Packet, PacketType, HEADER_LEN, MAX_SACK_BYTES};
use super::recv::{Arrival, Receiver};
use super::send::{Fate, Sender};
use crate::types::Instant;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// We sent a SYN (this many resends so far) and wait for its answer.
    SynSent { resends: u32 },
    /// A peer's SYN was answered; its next packet confirms the connection.
    SynReceived,
    /// Open.
    Connected,
}

/// What a connection writes into: datagrams to send and events for the user.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) transmits: std::collections::VecDeque<(SocketAddr, Vec<u8>)>,
    pub(super) events: std::collections::VecDeque<UtpEvent>,
}

/// One connection.
#[derive(Debug)]
pub(super) struct Connection {
    id: UtpConnId,
    addr: SocketAddr,
    /// The id on packets we send.
    send_id: u16,
    phase: Phase,
    sender: Sender,
    receiver: Receiver,
    rtt: Rtt,
    cc: Ledbat,
    /// Packet-size discovery.
    mtu: PathMtu,
    /// The peer's advertised receive window.
    peer_window: usize,
    /// The one-way delay of the peer's last packet, echoed to it.
    reply_delay: u32,
    /// When the retransmission timer fires.
    rto_at: Option<Instant>,
    /// Retransmission timeouts in a row.
    timeouts: u32,
    /// When the peer's zero window is probed.
    probe_at: Option<Instant>,
    /// One packet may be sent past a zero window.
    probing: bool,
    created: Instant,
    last_recv: Instant,
    last_send: Instant,
    /// A packet arrived that we have not acknowledged yet.
    need_ack: bool,
    /// `Readable` was said and the buffer not emptied since.
    readable_said: bool,
    /// A write was cut short: say `Writable` when room returns.
    want_writable: bool,
    /// The user closed: FIN after the last byte, received bytes are dropped.
    closing: bool,
    /// Packets sent again.
    resent: u64,
    /// The connection is over and may be forgotten.
    done: bool,
}

/// A packet's header as connection `send_id` sends it now.
fn header_of(
    send_id: u16,
    reply_delay: u32,
    receiver: &Receiver,
    kind: PacketType,
    seq_nr: u16,
    now: Instant,
) -> Header {
    Header {
        kind,
        conn_id: send_id,
        timestamp: now.as_micros() as u32,
        timestamp_diff: reply_delay,
        wnd_size: receiver.room().min(u32::MAX as usize) as u32,
        seq_nr,
        ack_nr: receiver.ack_nr(),
    }
}

/// The largest payload packet-size discovery may try towards `addr`: the host's path MTU less
/// the IP and UDP headers, our header and the largest selective ACK (none without a path MTU).
fn payload_ceiling(cfg: &UtpConfig, addr: SocketAddr) -> usize {
    let Some(mtu) = cfg.path_mtu else { return cfg.max_payload };
    let ip_udp = if addr.is_ipv4() { 20 + 8 } else { 40 + 8 };
    mtu.saturating_sub(ip_udp + HEADER_LEN + 2 + MAX_SACK_BYTES)
}

/// How a connection starts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Start {
    pub(super) id: UtpConnId,
    pub(super) addr: SocketAddr,
    pub(super) send_id: u16,
    /// Our first sequence number.
    pub(super) seq: u16,
    /// The peer's last sequence number seen (its SYN's) for an accepted connection.
    pub(super) ack_nr: u16,
}

impl Connection {
    /// A connection we open: sends the SYN (its connection id is the one we receive on).
    pub(super) fn connect(start: Start, recv_id: u16, now: Instant, cfg: &UtpConfig, out: &mut Outbox) -> Connection {
        let mut c = Connection::new(start, Phase::SynSent { resends: 0 }, now, cfg);
        c.send_syn(recv_id, now, out);
        c
    }

    /// A connection a peer opened with a SYN: answers it.
    pub(super) fn accept(start: Start, syn: &Header, now: Instant, cfg: &UtpConfig, out: &mut Outbox) -> Connection {
        let mut c = Connection::new(start, Phase::SynReceived, now, cfg);
        c.peer_window = syn.wnd_size as usize;
        c.reply_delay = (now.as_micros() as u32).wrapping_sub(syn.timestamp);
        c.need_ack = true;
        c.flush(now, cfg, out);
        c
    }

    fn new(start: Start, phase: Phase, now: Instant, cfg: &UtpConfig) -> Connection {
        Connection {
            id: start.id,
            addr: start.addr,
            send_id: start.send_id,
            phase,
            sender: Sender::new(start.seq, cfg.send_buffer),
            receiver: Receiver::new(start.ack_nr, cfg.recv_buffer),
            rtt: Rtt::new(),
            cc: Ledbat::new(cfg.max_payload, cfg.send_buffer, cfg.target_delay),
            mtu: PathMtu::new(cfg.max_payload, payload_ceiling(cfg, start.addr)),
            peer_window: cfg.max_payload,
            reply_delay: 0,
            rto_at: None,
            timeouts: 0,
            probe_at: None,
            probing: false,
            created: now,
            last_recv: now,
            last_send: now,
            need_ack: false,
            readable_said: false,
            want_writable: false,
            closing: false,
            resent: 0,
            done: false,
        }
    }

    /// Whether it waits for the peer to confirm it.
    pub(super) fn half_open(&self) -> bool {
        self.phase == Phase::SynReceived
    }

    /// Whether it is over.
    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// The peer's address.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id on packets we send.
    pub(super) fn send_id(&self) -> u16 {
        self.send_id
    }

    /// Its numbers.
    pub(super) fn stats(&self) -> UtpConnStats {
        UtpConnStats {
            cwnd: self.cc.window(),
            in_flight: self.sender.window(),
            rtt: self.rtt.srtt(),
            queue_delay: self.cc.queue_delay(),
            peer_window: self.peer_window,
            resent: self.resent,
            payload: self.mtu.current(),
        }
    }

    fn send_syn(&mut self, recv_id: u16, now: Instant, out: &mut Outbox) {
        // The SYN carries the id we receive on and consumes our first sequence number.
        let header = self.header(PacketType::Syn, self.sender.next_seq().wrapping_sub(1), now);
        let header = Header { conn_id: recv_id, ack_nr: 0, ..header };
        out.transmits.push_back((self.addr, Packet { header, sack: None, payload: &[] }.encode()));
        self.last_send = now;
        self.rto_at = Some(now + self.rtt.rto());
    }

    fn header(&self, kind: PacketType, seq_nr: u16, now: Instant) -> Header {
        header_of(self.send_id, self.reply_delay, &self.receiver, kind, seq_nr, now)
    }

    /// Takes a packet the endpoint routed here.
    pub(super) fn handle(&mut self, p: &Packet<'_>, now: Instant, cfg: &UtpConfig, out: &mut Outbox) {
        let h = p.header;
        match (h.kind, self.phase) {
            (PacketType::Reset, _) => return self.finish(UtpCloseReason::Reset, out),
            (PacketType::Syn, Phase::SynReceived | Phase::Connected) => {
                // Our answer was lost: answer again.
                self.need_ack = true;
                return self.flush(now, cfg, out);
            }
            (PacketType::Syn, Phase::SynSent { .. }) => return,
            (PacketType::State, Phase::SynSent { .. }) => {
                if h.ack_nr != self.sender.next_seq().wrapping_sub(1) {
                    return;
                }
                // The answer's sequence number is the one the peer's first data packet takes.
                self.receiver.set_ack_nr(h.seq_nr.wrapping_sub(1));
                self.phase = Phase::Connected;
                self.rto_at = None;
                out.events.push_back(UtpEvent::Connected(self.id));
            }
            (_, Phase::SynSent { .. }) => return,
            _ => {}
        }
        let in_flight = self.sender.window();
        let Ok(acked) = self.sender.on_ack(h.ack_nr, p.sack.as_ref(), h.kind == PacketType::State, now) else {
            return; // acknowledges what we never sent: forged or stale
        };
        if self.phase == Phase::SynReceived {
            self.phase = Phase::Connected;
            out.events.push_back(UtpEvent::Incoming(self.id, self.addr));
        }
        self.last_recv = now;
        self.timeouts = 0;
        self.reply_delay = (now.as_micros() as u32).wrapping_sub(h.timestamp);
        self.peer_window = h.wnd_size as usize;
        if self.peer_window > 0 {
            self.probe_at = None;
        }
        if let Some(rtt) = acked.rtt {
            self.rtt.sample(rtt);
        }
        if acked.bytes > 0 {
            if h.timestamp_diff != 0 {
                self.cc.delay_sample(h.timestamp_diff, now);
            }
            self.cc.on_ack(acked.bytes, in_flight);
        }
        let probe = self.mtu.probe_seq();
        self.follow_probe();
        self.mtu.acked(acked.largest_acked);
        if acked.largest_lost > 0 {
            self.mtu.lost(acked.largest_lost, now);
        }
        // A lost size probe says the path is narrower, not that it is congested.
        if let Some(lost) = acked.lost.filter(|&l| Some(l) != probe) {
            self.cc.on_loss(lost, self.sender.next_seq());
        }
        if acked.progress {
            self.rto_at = (self.sender.window() > 0).then(|| now + self.rtt.rto());
        }
        if acked.fin_acked && self.closing {
            self.done = true;
            return;
        }
        self.take_data(&h, p.payload, out);
        if self.want_writable && self.sender.room() > 0 {
            self.want_writable = false;
            out.events.push_back(UtpEvent::Writable(self.id));
        }
        // The bare ACK waits until the datagrams at hand are taken: one ACK for a burst of
        // them (as libutp's deferred ACKs), which halves the packets on the wire.
        self.flush_with(now, cfg, out, true);
        self.check_finished(out);
        if self.done {
            self.send_ack(now, out);
        }
    }

    /// Tells packet-size discovery what became of its probe.
    fn follow_probe(&mut self) {
        let Some(seq) = self.mtu.probe_seq() else { return };
        match self.sender.fate(seq) {
            Fate::Acked => self.mtu.probe_acked(),
            Fate::Lost => self.mtu.probe_lost(),
            Fate::Pending => {}
        }
    }

    fn take_data(&mut self, h: &Header, payload: &[u8], out: &mut Outbox) {
        let arrival = match h.kind {
            PacketType::Data => self.receiver.arrive(h.seq_nr, payload, false),
            PacketType::Fin => self.receiver.arrive(h.seq_nr, &[], true),
            _ => return,
        };
        // Every data packet is acknowledged, duplicates too (the peer may have lost our ACK).
        self.need_ack = true;
        if arrival != Arrival::Kept {
            return;
        }
        if self.closing {
            let n = self.receiver.readable();
            self.receiver.read(n);
        } else if !self.readable_said && self.receiver.readable() > 0 {
            self.readable_said = true;
            out.events.push_back(UtpEvent::Readable(self.id));
        }
    }

    /// Once the peer's FIN and everything before it arrived and was read, the connection ends.
    fn check_finished(&mut self, out: &mut Outbox) {
        if self.receiver.finished() && self.receiver.readable() == 0 && !self.done {
            self.finish(UtpCloseReason::Finished, out);
        }
    }

    fn finish(&mut self, reason: UtpCloseReason, out: &mut Outbox) {
        self.done = true;
        if !self.closing && self.phase != Phase::SynReceived {
            out.events.push_back(UtpEvent::Closed(self.id, reason));
        }
    }

    /// Sends what the windows allow, then a bare ACK if one is owed (unless `defer_ack`: the
    /// endpoint sends it with [`Connection::send_ack`] once the datagrams at hand are taken).
    fn flush_with(&mut self, now: Instant, cfg: &UtpConfig, out: &mut Outbox, defer_ack: bool) {
        if self.phase != Phase::Connected && !self.need_ack {
            return;
        }
        if self.phase == Phase::Connected {
            // Nothing arrives during a flush: one SACK serves every packet of it.
            let sack = self.receiver.sack();
            let (send_id, reply_delay) = (self.send_id, self.reply_delay);
            let mss = self.mtu.current();
            // A size probe pads the next full new packet (its padding rides outside the
            // window: one probe at a time).
            let mut probe = self.mtu.probe_due(now).filter(|_| self.sender.next_new_len(mss) == mss);
            loop {
                let mut allowed = self.cc.window().min(self.peer_window);
                if self.probing {
                    allowed = allowed.max(cfg.max_payload);
                }
                let Some(o) = self.sender.next(allowed, mss, now) else { break };
                let header = header_of(send_id, reply_delay, &self.receiver, o.kind, o.seq, now);
                let mut padding = 0;
                if let Some(size) = probe.filter(|_| !o.again && o.kind == PacketType::Data) {
                    padding = size.saturating_sub(o.payload.len());
                    self.mtu.probe_sent(o.seq, size);
                    probe = None;
                }
                let datagram = encode(&header, sack.as_ref(), padding, o.payload);
                self.resent += u64::from(o.again);
                out.transmits.push_back((self.addr, datagram));
                self.probing = false;
                self.need_ack = false;
                self.last_send = now;
                self.rto_at.get_or_insert(now + self.rtt.rto());
            }
        }
        if !defer_ack {
            self.send_ack(now, out);
        }
        if self.peer_window < cfg.max_payload && self.sender.has_unsent() && self.sender.window() == 0 {
            self.probe_at.get_or_insert(now + cfg.zero_window_probe);
        }
    }

    /// [`Connection::flush_with`], the ACK sent at once.
    fn flush(&mut self, now: Instant, cfg: &UtpConfig, out: &mut Outbox) {
        self.flush_with(now, cfg, out, false);
    }

    /// Whether a bare ACK is owed (deferred by [`Connection::handle`]).
    pub(super) fn owes_ack(&self) -> bool {
        self.need_ack && !self.done
    }

    /// Sends the bare ACK owed, if any.
    pub(super) fn send_ack(&mut self, now: Instant, out: &mut Outbox) {
        if self.need_ack {
            let header = self.header(PacketType::State, self.sender.next_seq(), now);
            let sack = self.receiver.sack();
            out.transmits.push_back((self.addr, encode(&header, sack.as_ref(), 0, &[])));
            self.need_ack = false;
            self.last_send = now;
        }
    }

    /// Takes up to `max` received bytes.
    pub(super) fn read(&mut self, max: usize, now: Instant, cfg: &UtpConfig, out: &mut Outbox) -> Vec<u8> {
        let before = self.receiver.room();
        let bytes = self.receiver.read(max);
        if self.receiver.readable() == 0 {
            self.readable_said = false;
        }
        // A window that was too small for a packet opens: tell the peer now rather than make
        // it wait for its probe.
        if before < cfg.max_payload && self.receiver.room() >= cfg.max_payload && self.phase == Phase::Connected {
            self.need_ack = true;
            self.flush(now, cfg, out);
        }
        self.check_finished(out);
        bytes
    }

    /// Queues bytes to send; returns how many fit the send buffer.
    pub(super) fn write(&mut self, bytes: &[u8], now: Instant, cfg: &UtpConfig, out: &mut Outbox) -> usize {
        if self.closing || self.phase == Phase::SynReceived {
            return 0;
        }
        let n = self.sender.write(bytes);
        if n < bytes.len() {
            self.want_writable = true;
        }
        self.flush(now, cfg, out);
        n
    }

    /// Sends FIN after the bytes written; the connection goes once the FIN is acknowledged.
    pub(super) fn close(&mut self, now: Instant, cfg: &UtpConfig, out: &mut Outbox) {
        if self.phase != Phase::Connected {
            self.done = true;
            return;
        }
        self.closing = true;
        self.sender.close();
        let n = self.receiver.readable();
        self.receiver.read(n);
        self.flush(now, cfg, out);
    }

    /// Sends RESET and ends the connection.
    pub(super) fn abort(&mut self, now: Instant, out: &mut Outbox) {
        let header = self.header(PacketType::Reset, self.sender.next_seq(), now);
        out.transmits.push_back((self.addr, Packet { header, sack: None, payload: &[] }.encode()));
        self.done = true;
    }

    /// When the connection next needs [`Connection::handle_timeout`].
    pub(super) fn deadline(&self, cfg: &UtpConfig) -> Instant {
        let mut at = match self.phase {
            Phase::SynSent { .. } => self.rto_at.unwrap_or(Instant::FAR_FUTURE),
            // An unconfirmed peer gets as long as our own connect attempts would.
            Phase::SynReceived => self.created + self.connect_window(cfg),
            Phase::Connected => {
                let mut at = (self.last_recv + cfg.idle_timeout).min(self.last_send + cfg.keepalive);
                if let Some(t) = self.rto_at {
                    at = at.min(t);
                }
                if let Some(t) = self.probe_at {
                    at = at.min(t);
                }
                at
            }
        };
        if self.done {
            at = Instant::ZERO;
        }
        at
    }

    /// How long a connect may take: the SYN and its resends, each timeout doubled.
    fn connect_window(&self, cfg: &UtpConfig) -> std::time::Duration {
        let rto = super::ledbat::INITIAL_RTO;
        (0..=cfg.syn_resends.min(16)).map(|i| rto * (1 << i)).sum()
    }

    /// Acts on the timers that passed by `now`.
    pub(super) fn handle_timeout(&mut self, now: Instant, cfg: &UtpConfig, out: &mut Outbox) {
        match self.phase {
            Phase::SynSent { resends } => {
                if self.rto_at.is_some_and(|t| t <= now) {
                    if resends >= cfg.syn_resends {
                        return self.finish(UtpCloseReason::ConnectTimedOut, out);
                    }
                    self.phase = Phase::SynSent { resends: resends + 1 };
                    self.rtt.back_off();
                    let recv_id = self.send_id.wrapping_sub(1);
                    self.send_syn(recv_id, now, out);
                }
            }
            Phase::SynReceived => {
                if now >= self.created + self.connect_window(cfg) {
                    self.done = true;
                }
            }
            Phase::Connected => self.connected_timeout(now, cfg, out),
        }
    }

    fn connected_timeout(&mut self, now: Instant, cfg: &UtpConfig, out: &mut Outbox) {
        if now >= self.last_recv + cfg.idle_timeout {
            return self.finish(UtpCloseReason::TimedOut, out);
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.timeouts += 1;
            if self.timeouts > cfg.max_resends {
                return self.finish(UtpCloseReason::TimedOut, out);
            }
            let largest = self.sender.on_timeout();
            self.follow_probe();
            self.mtu.lost(largest, now);
            self.cc.on_timeout();
            self.rtt.back_off();
        }
        if self.probe_at.is_some_and(|t| t <= now) {
            self.probe_at = None;
            self.probing = true;
        }
        if now >= self.last_send + cfg.keepalive {
            self.need_ack = true;
        }
        self.flush(now, cfg, out);
        if self.rto_at.is_none() && self.sender.window() > 0 {
            self.rto_at = Some(now + self.rtt.rto());
        }
        if self.closing && !self.sender.busy() {
            self.done = true;
        }
    }
}
