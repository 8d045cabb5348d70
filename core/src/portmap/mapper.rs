//! [`PortMapper`]: the mappings we want, on each gateway protocol switched on.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::types::Instant;

use super::config::PortMapConfig;
use super::cx::Cx;
use super::natpmp_client::NatPmpClient;
use super::output::{HttpAnswer, PortMapEvent, PortMapOutput};
use super::pcp_client::PcpClient;
use super::protocol::{Protocol, Via};
use super::state::{MappingState, MappingStatus};
use super::upnp_client::UpnpClient;

/// Asks the gateway to forward our ports and keeps the mappings alive.
///
/// Drive it like the engine: [`PortMapper::start`], then hand it every datagram and HTTP
/// answer (`handle_*`) and [`PortMapper::handle_timeout`] at [`PortMapper::poll_timeout`],
/// draining [`PortMapper::poll_output`] after each call. [`PortMapper::shutdown`] removes the
/// mappings; [`PortMapper::is_done`] says when the removals are answered (or timed out).
#[derive(Debug)]
pub struct PortMapper {
    wanted: Vec<(Protocol, u16)>,
    pcp: Option<PcpClient>,
    natpmp: Option<NatPmpClient>,
    /// NAT-PMP waits for PCP to be refused (RFC 6887 §9: PCP first, NAT-PMP as the fallback).
    natpmp_held: bool,
    upnp: Option<UpnpClient>,
    /// The last HTTP request id handed out.
    ids: u64,
    out: VecDeque<PortMapOutput>,
    /// After shutdown: when to stop waiting for removals.
    stop_by: Option<Instant>,
    /// Shutdown's wait is over.
    timed_out: bool,
    started: bool,
}

impl PortMapper {
    /// A mapper for `wanted` mappings (TCP and UDP on the listen port, say), nothing sent yet.
    /// NAT-PMP needs [`PortMapConfig::gateway`], PCP that and [`PortMapConfig::client_ip`];
    /// without them only UPnP runs.
    pub fn new(config: PortMapConfig, wanted: &[(Protocol, u16)]) -> PortMapper {
        let n = wanted.len();
        let natpmp = match (config.natpmp, config.gateway) {
            (true, Some(gw)) => Some(NatPmpClient::new(gw, config.lease, n)),
            _ => None,
        };
        let pcp = match (config.pcp, config.gateway, config.client_ip) {
            (true, Some(gw), Some(client)) => Some(PcpClient::new(gw, client, config.pcp_nonce, config.lease, n)),
            _ => None,
        };
        let upnp = config.upnp.then(|| UpnpClient::new(config.lease, config.description.clone(), n));
        PortMapper {
            wanted: wanted.to_vec(),
            natpmp_held: pcp.is_some() && natpmp.is_some(),
            pcp,
            natpmp,
            upnp,
            ids: 0,
            out: VecDeque::new(),
            stop_by: None,
            timed_out: false,
            started: false,
        }
    }

    /// Whether any protocol is on.
    pub fn is_enabled(&self) -> bool {
        self.pcp.is_some() || self.natpmp.is_some() || self.upnp.is_some()
    }

    /// Runs `f` on the clients, then hands over from PCP to NAT-PMP if the gateway refused PCP.
    fn step(&mut self, f: impl FnOnce(&mut Clients<'_>, &mut Cx<'_>), now: Instant) {
        let mut out = Vec::new();
        let mut cx = Cx { wanted: &self.wanted, ids: &mut self.ids, now, out: &mut out };
        let natpmp = if self.natpmp_held { &mut None } else { &mut self.natpmp };
        f(&mut Clients { pcp: &mut self.pcp, natpmp, upnp: &mut self.upnp }, &mut cx);
        if self.pcp.as_ref().is_some_and(|p| p.unsupported) {
            self.pcp = None;
            let fallback = self.natpmp.is_some().then_some(Via::NatPmp);
            cx.push(PortMapOutput::Event(PortMapEvent::Unsupported { via: Via::Pcp, fallback }));
            if std::mem::take(&mut self.natpmp_held) && self.stop_by.is_none() {
                if let Some(n) = &mut self.natpmp {
                    n.start(&mut cx);
                }
            }
        }
        self.out.extend(out);
    }

    /// Sends the first requests: the SSDP search, the NAT-PMP address and mapping requests.
    pub fn start(&mut self, now: Instant) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.step(
            |c, cx| {
                if let Some(p) = c.pcp {
                    p.start(cx);
                }
                if let Some(n) = c.natpmp {
                    n.start(cx);
                }
                if let Some(u) = c.upnp {
                    u.start(cx);
                }
            },
            now,
        );
    }

    /// A datagram that arrived on the NAT-PMP socket from `from`.
    pub fn handle_natpmp(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.step(
            |c, cx| {
                // Both speak on port 5351; each reads only its own version's answers.
                if let Some(p) = c.pcp {
                    p.handle(from, data, cx);
                }
                if let Some(n) = c.natpmp {
                    n.handle(from, data, cx);
                }
            },
            now,
        );
    }

    /// A datagram that arrived on the SSDP socket (answers to our search).
    pub fn handle_ssdp(&mut self, data: &[u8], now: Instant) {
        self.step(
            |c, cx| {
                if let Some(u) = c.upnp {
                    u.handle_ssdp(data, cx);
                }
            },
            now,
        );
    }

    /// The answer to [`PortMapOutput::Http`] `id` (`Err`: the request failed, with why).
    pub fn handle_http(&mut self, id: u64, result: Result<HttpAnswer, String>, now: Instant) {
        self.step(
            |c, cx| {
                if let Some(u) = c.upnp {
                    u.handle_http(id, result, cx);
                }
            },
            now,
        );
    }

    /// Resends, retries and renewals that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.started {
            return;
        }
        if self.stop_by.is_some_and(|t| t <= now) {
            self.timed_out = true;
        }
        self.step(
            |c, cx| {
                if let Some(p) = c.pcp {
                    p.handle_timeout(cx);
                }
                if let Some(n) = c.natpmp {
                    n.handle_timeout(cx);
                }
                if let Some(u) = c.upnp {
                    u.handle_timeout(cx);
                }
            },
            now,
        );
    }

    /// When [`PortMapper::handle_timeout`] is next due (`None`: nothing to wait for).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.started || self.is_done() {
            return None;
        }
        let natpmp = self.natpmp.as_ref().filter(|_| !self.natpmp_held);
        let clients = [
            self.pcp.as_ref().and_then(PcpClient::wake),
            natpmp.and_then(NatPmpClient::wake),
            self.upnp.as_ref().and_then(UpnpClient::wake),
        ];
        clients.into_iter().flatten().chain(self.stop_by).min()
    }

    /// The next thing to send or report.
    pub fn poll_output(&mut self) -> Option<PortMapOutput> {
        self.out.pop_front()
    }

    /// Removes every mapping made, waiting at most `within` for the gateway to confirm.
    pub fn shutdown(&mut self, now: Instant, within: Duration) {
        if self.stop_by.is_some() {
            return;
        }
        self.stop_by = Some(now + within);
        self.step(
            |c, cx| {
                if let Some(p) = c.pcp {
                    p.shutdown(cx);
                }
                if let Some(n) = c.natpmp {
                    n.shutdown(cx);
                }
                if let Some(u) = c.upnp {
                    u.shutdown(cx);
                }
            },
            now,
        );
    }

    /// Whether shutdown is over: every removal answered, or its time is up (as of the last
    /// call that gave the time).
    pub fn is_done(&self) -> bool {
        let Some(_) = self.stop_by else { return false };
        let removing = self.pcp.as_ref().is_some_and(PcpClient::removing)
            || self.natpmp.as_ref().is_some_and(NatPmpClient::removing)
            || self.upnp.as_ref().is_some_and(UpnpClient::removing);
        !removing || self.timed_out
    }
}

/// The clients one step works on (NAT-PMP is `None` while it waits for PCP's answer).
struct Clients<'a> {
    pcp: &'a mut Option<PcpClient>,
    natpmp: &'a mut Option<NatPmpClient>,
    upnp: &'a mut Option<UpnpClient>,
}

impl PortMapper {
    /// Every wanted mapping on every protocol that is on.
    pub fn status(&self) -> Vec<MappingStatus> {
        let pcp = self.pcp.iter().flat_map(|p| p.slots.iter().map(|s| (Via::Pcp, s)));
        let natpmp = self.natpmp.iter().filter(|_| !self.natpmp_held);
        let natpmp = natpmp.flat_map(|n| n.slots.iter().map(|s| (Via::NatPmp, s)));
        let upnp = self.upnp.iter().flat_map(|u| u.slots.iter().map(|s| (Via::Upnp, s)));
        let wanted = self.wanted.iter().cycle();
        pcp.chain(natpmp)
            .chain(upnp)
            .zip(wanted)
            .map(|((via, slot), &(protocol, internal_port))| MappingStatus {
                via,
                protocol,
                internal_port,
                state: slot.state.clone(),
            })
            .collect()
    }

    /// The external address of a protocol (UPnP, then PCP, then NAT-PMP), if a gateway told
    /// one we believe.
    pub fn external_ip(&self) -> Option<Ipv4Addr> {
        let pcp = || self.pcp.as_ref().and_then(|p| p.external_ip);
        let natpmp = || self.natpmp.as_ref().and_then(|n| n.external_ip);
        self.upnp.as_ref().and_then(|u| u.external_ip).or_else(pcp).or_else(natpmp)
    }

    /// The external port of the first mapping of `(protocol, internal_port)` in place, and
    /// the external address of the gateway that made it (if it told one we believe).
    pub fn external(&self, protocol: Protocol, internal_port: u16) -> Option<(Option<Ipv4Addr>, u16)> {
        let i = self.wanted.iter().position(|&w| w == (protocol, internal_port))?;
        let upnp = self.upnp.as_ref().and_then(|u| Some((u.external_ip, u.slots[i].external_port()?)));
        let pcp = || self.pcp.as_ref().and_then(|p| Some((p.external_ip, p.slots[i].external_port()?)));
        let natpmp = || self.natpmp.as_ref().and_then(|n| Some((n.external_ip, n.slots[i].external_port()?)));
        upnp.or_else(pcp).or_else(natpmp)
    }

    /// Whether every wanted mapping is in place on some protocol.
    pub fn all_mapped(&self) -> bool {
        self.wanted.iter().all(|&(p, port)| self.external(p, port).is_some())
    }
}

impl MappingState {
    /// A short word for status pages: `pending`, `mapped`, `failed`, `removing`, `removed`.
    pub fn word(&self) -> &'static str {
        match self {
            MappingState::Pending => "pending",
            MappingState::Mapped { .. } => "mapped",
            MappingState::Failed { .. } => "failed",
            MappingState::Removing => "removing",
            MappingState::Removed => "removed",
        }
    }
}
