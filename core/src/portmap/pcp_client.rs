//! The PCP side of the mapper (RFC 6887): MAP requests to the gateway, resent until answered,
//! answers matched to mappings by nonce, protocol and port, the external address taken from
//! them, the gateway's epoch watched for reboots, and a gateway that answers "unsupported
//! version" noted so that the mapper falls back to NAT-PMP.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::types::Instant;

use super::address::usable_external_ip;
use super::cx::Cx;
use super::epoch::Epoch;
use super::output::{PortMapEvent, PortMapOutput};
use super::pcp::{self, Answer, MapAnswer, MapRequest, Nonce, ResultCode};
use super::protocol::Via;
use super::slot::{ended, removed, Slot};
use super::state::MappingState;

/// First resend after this, doubled each time (RFC 6887 §8.1.1: IRT 3 s).
const FIRST_RESEND: Duration = Duration::from_secs(3);
/// Sends of one request before it counts as failed: 3 + 6 + 12 + 24 = 45 s, about NAT-PMP's
/// 64. RFC 6887 §8.1.1 resends forever (MRC 0, waits up to 1024 s); the failure backoff
/// (30 s doubling to 30 min) keeps trying forever the same way.
const MAX_SENDS: u32 = 4;

/// PCP state for every wanted mapping.
#[derive(Debug)]
pub(crate) struct PcpClient {
    gateway: SocketAddrV4,
    /// Our address as the gateway sees it, written into every request.
    client: Ipv4Addr,
    nonce: Nonce,
    lifetime: u32,
    pub(crate) external_ip: Option<Ipv4Addr>,
    /// The last address the gateway told (believed or not), so that a change is reported once.
    told_ip: Option<Ipv4Addr>,
    epoch: Epoch,
    pub(crate) slots: Vec<Slot>,
    /// The external port of each mapping being deleted (its slot no longer holds it).
    deleting: Vec<u16>,
    /// The gateway answered that it does not speak PCP: NAT-PMP takes over.
    pub(crate) unsupported: bool,
}

impl PcpClient {
    pub(crate) fn new(gateway: Ipv4Addr, client: Ipv4Addr, nonce: Nonce, lifetime: Duration, n: usize) -> PcpClient {
        PcpClient {
            gateway: SocketAddrV4::new(gateway, pcp::PORT),
            client,
            nonce,
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            external_ip: None,
            told_ip: None,
            epoch: Epoch::default(),
            slots: (0..n).map(|_| Slot::new()).collect(),
            deleting: vec![0; n],
            unsupported: false,
        }
    }

    /// Sends every mapping.
    pub(crate) fn start(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.slots.len() {
            self.send_map(i, cx);
        }
    }

    fn send_map(&mut self, i: usize, cx: &mut Cx<'_>) {
        let slot = &mut self.slots[i];
        if !slot.removing() && !matches!(slot.state, MappingState::Mapped { .. }) {
            slot.state = MappingState::Pending;
        }
        // Ask for the port we have (or our own).
        let suggested = slot.external_port().unwrap_or(cx.wanted[i].1);
        self.send(i, suggested, cx);
    }

    /// Sends slot `i`'s request (a deletion, lifetime 0 with the same nonce, while removing).
    fn send(&mut self, i: usize, suggested_port: u16, cx: &mut Cx<'_>) {
        let (protocol, internal_port) = cx.wanted[i];
        let slot = &mut self.slots[i];
        slot.attempt += 1;
        slot.wake = Some(cx.now + resend_after(slot.attempt));
        let lifetime = if slot.removing() { 0 } else { self.lifetime };
        let req =
            MapRequest { nonce: self.nonce, protocol, internal_port, suggested_port, lifetime, client: self.client };
        cx.push(PortMapOutput::NatPmp { to: self.gateway, data: req.encode() });
    }

    /// The earliest timer.
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.slots.iter().filter_map(|s| s.wake).min()
    }

    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.wake.is_none_or(|w| w > cx.now) {
                continue;
            }
            // Waiting for an answer: a first request, a removal, or a renewal of a mapping.
            let waiting = matches!(slot.state, MappingState::Pending | MappingState::Removing)
                || matches!(slot.state, MappingState::Mapped { .. }) && slot.attempt > 0;
            if waiting && slot.attempt >= MAX_SENDS {
                ended(Via::Pcp, slot, cx.wanted[i], String::from("no answer from the gateway"), cx);
            } else if slot.removing() {
                self.send(i, self.deleting[i], cx);
            } else {
                if !waiting {
                    slot.attempt = 0; // a renewal or a retry starts a fresh series of sends
                }
                self.send_map(i, cx);
            }
        }
    }

    /// A datagram on the NAT-PMP/PCP socket.
    pub(crate) fn handle(&mut self, from: SocketAddr, data: &[u8], cx: &mut Cx<'_>) {
        if from != SocketAddr::V4(self.gateway) || !self.slots.iter().any(|s| s.attempt > 0) {
            return; // RFC 6887 §8.3: only the server we asked, and only while we wait
        }
        match pcp::parse(data) {
            Ok(Answer::UnsupportedVersion) => {
                // For good: the mapper hands over to NAT-PMP (RFC 6887 §9) or reports it.
                self.unsupported = true;
                for slot in &mut self.slots {
                    *slot = Slot::new();
                    slot.state = MappingState::Failed { error: "the gateway does not speak PCP".into() };
                }
            }
            Ok(Answer::Map(answer)) => self.map_answer(answer, cx),
            Ok(Answer::Error { epoch, code }) => {
                self.rebooted(epoch, cx);
                // Too short to name the mapping: every request out failed.
                for i in 0..self.slots.len() {
                    if self.slots[i].attempt > 0 {
                        ended(Via::Pcp, &mut self.slots[i], cx.wanted[i], code.to_string(), cx);
                    }
                }
            }
            Err(_) => {}
        }
    }

    fn map_answer(&mut self, a: MapAnswer, cx: &mut Cx<'_>) {
        if a.nonce != self.nonce {
            return; // §11.3: not about a mapping of ours
        }
        let Some(protocol) = a.protocol else { return };
        let mapping = (protocol, a.internal_port);
        let Some(i) = (0..self.slots.len()).find(|&i| cx.wanted[i] == mapping && self.slots[i].attempt > 0) else {
            return;
        };
        self.rebooted(a.epoch, cx);
        let slot = &mut self.slots[i];
        if a.code != ResultCode::Success {
            return ended(Via::Pcp, slot, mapping, a.code.to_string(), cx);
        }
        if slot.removing() {
            return removed(Via::Pcp, slot, mapping, None, cx);
        }
        if a.lifetime.is_zero() || a.external_port == 0 {
            return ended(Via::Pcp, slot, mapping, "gateway granted no lifetime or no port".into(), cx);
        }
        let renewal = slot.mapped_before && slot.external_port().is_some();
        slot.mapped(a.external_port, Some(a.lifetime), cx.now);
        let (internal_port, external_port) = (a.internal_port, a.external_port);
        cx.push(PortMapOutput::Event(PortMapEvent::Mapped {
            via: Via::Pcp,
            protocol,
            internal_port,
            external_port,
            renewal,
        }));
        if let Some(ip) = a.external_ip.filter(|ip| self.told_ip != Some(*ip)) {
            self.told_ip = Some(ip);
            let usable = usable_external_ip(ip);
            self.external_ip = usable.then_some(ip);
            cx.push(PortMapOutput::Event(PortMapEvent::ExternalIp { via: Via::Pcp, ip, usable }));
        }
    }

    /// Watches the epoch: after a gateway restart (RFC 6887 §8.5) every mapping is made again.
    fn rebooted(&mut self, epoch: u32, cx: &mut Cx<'_>) {
        if !self.epoch.rebooted(epoch, cx.now) {
            return;
        }
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].state, MappingState::Mapped { .. }) && self.slots[i].attempt == 0 {
                self.send_map(i, cx);
            }
        }
    }

    /// Asks for every mapping made (or being made) to be deleted.
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>) {
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let made = matches!(slot.state, MappingState::Mapped { .. })
                || matches!(slot.state, MappingState::Pending) && slot.attempt > 0;
            if made && !self.unsupported {
                self.deleting[i] = slot.external_port().unwrap_or(cx.wanted[i].1);
                slot.state = MappingState::Removing;
                slot.attempt = 0;
                self.send(i, self.deleting[i], cx);
            } else {
                slot.state = MappingState::Removed;
                slot.wake = None;
            }
        }
    }

    /// Whether a removal is still unanswered.
    pub(crate) fn removing(&self) -> bool {
        self.slots.iter().any(Slot::removing)
    }
}

/// The wait after send number `attempt` (1-based): 3 s doubled each time.
fn resend_after(attempt: u32) -> Duration {
    FIRST_RESEND.saturating_mul(1 << attempt.saturating_sub(1).min(16))
}
