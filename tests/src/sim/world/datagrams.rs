//! Datagrams between hosts: what the engines send from their DHT/uTP socket leaves through
//! the sender's uplink, crosses a `shoal_netsim::DatagramPath` (the two access links' latency,
//! the world's loss, duplication and jitter), comes in through the receiver's downlink, and
//! reaches the host that owns the address if it has a UDP socket there (an engine with uTP
//! on) and, if it is behind a NAT, the NAT lets it in.
//!
//! Both links queue without bound, as the uplink does for streams: the sender's congestion
//! control (LEDBAT) is what bounds its queue. (With a 1 s drop-tail queue at the uplink, uTP
//! lost most of its throughput to retransmissions once the queue overflowed.)

use std::net::SocketAddr;

use shoal_core::{Input, Socket};
use shoal_netsim::DatagramPath;

use super::event::Ev;
use super::host::HostKind;
use super::net::{instant, virtual_time};
use super::state::World;
use crate::sim::params::Transport;

impl World {
    /// Whether honest host `i` has a UDP socket for uTP.
    pub(super) fn speaks_utp(&self, i: usize) -> bool {
        i < self.params.peers && self.params.transport(i) != Transport::Tcp
    }

    /// Whether host `i` listens for TCP (adversaries always do).
    pub(super) fn listens_tcp(&self, i: usize) -> bool {
        i >= self.params.peers || self.params.transport(i) != Transport::Utp
    }

    /// Host `host` sends `data` to `to` from its DHT/uTP socket.
    pub(super) fn send_datagram(&mut self, host: usize, to: SocketAddr, data: Vec<u8>) {
        self.trace.mix(0x18 ^ (data.len() as u64) << 8);
        self.count("datagrams_sent");
        let Some(&target) = self.by_addr.get(&to) else { return };
        let now = virtual_time(self.now);
        let departed = self.hosts[host].uplink.transmit(now, data.len() as u64);
        if let Some(nat) = &mut self.hosts[host].nat {
            nat.outbound(to, now);
        }
        if self.partitioned(host, target).is_some() {
            return;
        }
        let d = self.params.datagrams;
        let path =
            DatagramPath { latency: self.lat(host, target), jitter: d.jitter, loss: d.loss, duplicate: d.duplicate };
        let from = self.hosts[host].addr;
        let arrivals = path.arrivals(departed, &mut self.rng);
        if arrivals.is_empty() {
            self.count("datagrams_lost");
        }
        let mut data = Some(data);
        for (i, at) in arrivals.iter().enumerate() {
            let copy = if i + 1 == arrivals.len() {
                data.take().unwrap_or_default()
            } else {
                data.clone().unwrap_or_default()
            };
            let ev = Ev::Datagram { src: host, to: target, from, data: copy, queued: false };
            self.schedule_at(instant(*at), ev);
        }
    }

    /// A datagram arrives at host `to`: its engine reads it if it is up and has the socket.
    pub(super) fn deliver_datagram(&mut self, src: usize, to: usize, from: SocketAddr, data: Vec<u8>, queued: bool) {
        if !queued {
            // In through the downlink, behind what arrived before it.
            let now = virtual_time(self.now);
            let done = self.hosts[to].downlink.transmit(now, data.len() as u64);
            let ev = Ev::Datagram { src, to, from, data, queued: true };
            return self.schedule_at(instant(done), ev);
        }
        if !self.hosts[to].online || !self.speaks_utp(to) {
            return;
        }
        if self.hosts[to].nat.as_ref().is_some_and(|nat| !nat.admits(from, virtual_time(self.now))) {
            self.count("nat_drops");
            return;
        }
        *self.udp_bytes.entry((src, to)).or_default() += data.len() as u64;
        self.trace.mix(0x31 ^ (data.len() as u64) << 8);
        let now = self.now;
        let HostKind::Engine(h) = &mut self.hosts[to].kind else { return };
        let Some(e) = &mut h.engine else { return };
        e.handle(Input::Datagram { socket: Socket::Dht, from, data: &data }, now);
        self.drain(to);
    }
}
