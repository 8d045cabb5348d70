//! The NAT-PMP side of the mapper: requests to the gateway, resent on RFC 6886's schedule,
//! answers matched to mappings, and the gateway's epoch watched for reboots.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::types::Instant;

use super::address::usable_external_ip;
use super::cx::Cx;
use super::epoch::Epoch;
use super::natpmp::{self, Answer, Request};
use super::output::{PortMapEvent, PortMapOutput};
use super::protocol::{Protocol, Via};
use super::slot::{ended, removed, Slot};
use super::state::MappingState;

/// First resend after this; doubled each time (RFC 6886 §3.1).
const FIRST_RESEND: Duration = Duration::from_millis(250);
/// Sends of one request before the gateway is taken as not speaking NAT-PMP (RFC 6886 §3.1:
/// nine, 64 seconds in all).
const MAX_SENDS: u32 = 9;

/// NAT-PMP state for every wanted mapping.
#[derive(Debug)]
pub(crate) struct NatPmpClient {
    gateway: SocketAddrV4,
    lifetime: u32,
    /// The external-address request, as a slot (its "external port" is unused).
    address: Slot,
    pub(crate) external_ip: Option<Ipv4Addr>,
    epoch: Epoch,
    pub(crate) slots: Vec<Slot>,
}

impl NatPmpClient {
    pub(crate) fn new(gateway: Ipv4Addr, lifetime: Duration, mappings: usize) -> NatPmpClient {
        NatPmpClient {
            gateway: SocketAddrV4::new(gateway, natpmp::PORT),
            lifetime: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            address: Slot::new(),
            external_ip: None,
            epoch: Epoch::default(),
            slots: (0..mappings).map(|_| Slot::new()).collect(),
        }
    }

    /// Sends the address request and every mapping.
    pub(crate) fn start(&mut self, cx: &mut Cx<'_>) {
        self.send_address(cx);
        for i in 0..self.slots.len() {
            self.send_map(i, cx);
        }
    }

    fn send(&self, req: Request, cx: &mut Cx<'_>) {
        cx.push(PortMapOutput::NatPmp { to: self.gateway, data: req.encode() });
    }

    fn send_address(&mut self, cx: &mut Cx<'_>) {
        self.address.attempt += 1;
        self.address.wake = Some(cx.now + resend_after(self.address.attempt));
        self.send(Request::ExternalAddress, cx);
    }

    fn send_map(&mut self, i: usize, cx: &mut Cx<'_>) {
        let (protocol, internal_port) = cx.wanted[i];
        let slot = &mut self.slots[i];
        let removing = slot.removing();
        slot.attempt += 1;
        slot.wake = Some(cx.now + resend_after(slot.attempt));
        if !removing && !matches!(slot.state, MappingState::Mapped { .. }) {
            slot.state = MappingState::Pending;
        }
        // Ask for the same external port (or keep the one we have); deletion is port 0, life 0.
        let (external_port, lifetime) =
            if removing { (0, 0) } else { (slot.external_port().unwrap_or(internal_port), self.lifetime) };
        self.send(Request::Map { protocol, internal_port, external_port, lifetime }, cx);
    }

    /// The earliest timer.
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.slots.iter().chain([&self.address]).filter_map(|s| s.wake).min()
    }

    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        if self.address.wake.is_some_and(|w| w <= now) {
            if self.address.attempt >= MAX_SENDS {
                self.address.fail("no answer from the gateway".into(), now);
                let error = "no answer from the gateway".into();
                cx.push(PortMapOutput::Event(PortMapEvent::ExternalIpFailed { via: Via::NatPmp, error }));
            } else {
                self.send_address(cx);
            }
        }
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.wake.is_none_or(|w| w > now) {
                continue;
            }
            // Waiting for an answer: a first request, a removal, or a renewal of a mapping.
            let waiting = matches!(slot.state, MappingState::Pending | MappingState::Removing)
                || matches!(slot.state, MappingState::Mapped { .. }) && slot.attempt > 0;
            if waiting && slot.attempt >= MAX_SENDS {
                let mapping = cx.wanted[i];
                ended(Via::NatPmp, slot, mapping, String::from("no answer from the gateway"), cx);
            } else {
                // A resend, a retry after failure, or a renewal: a renewal or retry starts a
                // fresh series of sends.
                if !waiting {
                    slot.attempt = 0;
                }
                self.send_map(i, cx);
            }
        }
    }

    /// A datagram on the NAT-PMP socket.
    pub(crate) fn handle(&mut self, from: SocketAddr, data: &[u8], cx: &mut Cx<'_>) {
        let now = cx.now;
        // Only the gateway's port 5351 answers (RFC 6886 §3.2: others are ignored).
        if from != SocketAddr::V4(self.gateway) {
            return;
        }
        let Ok(answer) = natpmp::parse(data) else { return };
        let epoch = match answer {
            Answer::ExternalAddress { epoch, .. } | Answer::Mapped { epoch, .. } | Answer::Refused { epoch, .. } => {
                epoch
            }
        };
        if self.epoch.rebooted(epoch, now) {
            // RFC 6886 §3.6: the gateway lost its table; make every mapping again.
            for i in 0..self.slots.len() {
                if matches!(self.slots[i].state, MappingState::Mapped { .. }) {
                    self.slots[i].attempt = 0;
                    self.send_map(i, cx);
                }
            }
        }
        match answer {
            Answer::ExternalAddress { ip, .. } => {
                if self.address.wake.is_none() && self.address.attempt == 0 {
                    return; // unasked
                }
                self.address = Slot { wake: None, attempt: 0, failures: 0, ..self.address.clone() };
                let usable = usable_external_ip(ip);
                self.external_ip = usable.then_some(ip);
                cx.push(PortMapOutput::Event(PortMapEvent::ExternalIp { via: Via::NatPmp, ip, usable }));
            }
            Answer::Refused { mapping: None, code, .. } => {
                self.address.fail(code.to_string(), now);
                cx.push(PortMapOutput::Event(PortMapEvent::ExternalIpFailed {
                    via: Via::NatPmp,
                    error: code.to_string(),
                }));
            }
            Answer::Mapped { protocol, internal_port, external_port, lifetime, .. } => {
                let Some(i) = self.waiting_for(cx.wanted, protocol, internal_port) else { return };
                let slot = &mut self.slots[i];
                if slot.removing() {
                    removed(Via::NatPmp, slot, (protocol, internal_port), None, cx);
                } else if lifetime.is_zero() || external_port == 0 {
                    let error = String::from("gateway granted no lifetime or no port");
                    ended(Via::NatPmp, slot, (protocol, internal_port), error, cx);
                } else {
                    let renewal = slot.mapped_before && slot.external_port().is_some();
                    slot.mapped(external_port, Some(lifetime), now);
                    cx.push(PortMapOutput::Event(PortMapEvent::Mapped {
                        via: Via::NatPmp,
                        protocol,
                        internal_port,
                        external_port,
                        renewal,
                    }));
                }
            }
            Answer::Refused { mapping: Some((protocol, internal_port)), code, .. } => {
                let Some(i) = self.waiting_for(cx.wanted, protocol, internal_port) else { return };
                ended(Via::NatPmp, &mut self.slots[i], (protocol, internal_port), code.to_string(), cx);
            }
        }
    }

    /// The slot of `(protocol, port)` with a request out (an answer nobody asked for is ignored).
    fn waiting_for(&self, wanted: &[(Protocol, u16)], protocol: Protocol, port: u16) -> Option<usize> {
        (0..self.slots.len()).find(|&i| {
            wanted[i] == (protocol, port)
                && self.slots[i].attempt > 0
                && matches!(
                    self.slots[i].state,
                    MappingState::Pending | MappingState::Removing | MappingState::Mapped { .. }
                )
        })
    }

    /// Asks for every mapping made (or being made) to be deleted.
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>) {
        self.address.wake = None;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let made = matches!(slot.state, MappingState::Mapped { .. })
                || matches!(slot.state, MappingState::Pending) && slot.attempt > 0;
            if made {
                slot.state = MappingState::Removing;
                slot.attempt = 0;
                self.send_map(i, cx);
            } else {
                slot.state = MappingState::Removed;
                slot.wake = None;
            }
        }
    }
}

impl NatPmpClient {
    /// Whether a removal is still unanswered.
    pub(crate) fn removing(&self) -> bool {
        self.slots.iter().any(Slot::removing)
    }
}

/// The wait after send number `attempt` (1-based): 250 ms doubled each time.
fn resend_after(attempt: u32) -> Duration {
    FIRST_RESEND.saturating_mul(1 << attempt.saturating_sub(1).min(16))
}
