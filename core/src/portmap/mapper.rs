//! [`PortMapper`]: the mappings we want, on each gateway protocol switched on.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::types::Instant;

use super::config::PortMapConfig;
use super::cx::Cx;
use super::natpmp_client::NatPmpClient;
use super::output::{HttpAnswer, PortMapOutput};
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
    natpmp: Option<NatPmpClient>,
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
    /// NAT-PMP needs [`PortMapConfig::gateway`]; without it only UPnP runs.
    pub fn new(config: PortMapConfig, wanted: &[(Protocol, u16)]) -> PortMapper {
        let n = wanted.len();
        let natpmp = match (config.natpmp, config.gateway) {
            (true, Some(gw)) => Some(NatPmpClient::new(gw, config.lease, n)),
            _ => None,
        };
        let upnp = config.upnp.then(|| UpnpClient::new(config.lease, config.description.clone(), n));
        PortMapper {
            wanted: wanted.to_vec(),
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
        self.natpmp.is_some() || self.upnp.is_some()
    }

    fn step(&mut self, f: impl FnOnce(&mut Option<NatPmpClient>, &mut Option<UpnpClient>, &mut Cx<'_>), now: Instant) {
        let mut out = Vec::new();
        let mut cx = Cx { wanted: &self.wanted, ids: &mut self.ids, now, out: &mut out };
        f(&mut self.natpmp, &mut self.upnp, &mut cx);
        self.out.extend(out);
    }

    /// Sends the first requests: the SSDP search, the NAT-PMP address and mapping requests.
    pub fn start(&mut self, now: Instant) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        self.step(
            |natpmp, upnp, cx| {
                if let Some(n) = natpmp {
                    n.start(cx);
                }
                if let Some(u) = upnp {
                    u.start(cx);
                }
            },
            now,
        );
    }

    /// A datagram that arrived on the NAT-PMP socket from `from`.
    pub fn handle_natpmp(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.step(
            |natpmp, _, cx| {
                if let Some(n) = natpmp {
                    n.handle(from, data, cx);
                }
            },
            now,
        );
    }

    /// A datagram that arrived on the SSDP socket (answers to our search).
    pub fn handle_ssdp(&mut self, data: &[u8], now: Instant) {
        self.step(
            |_, upnp, cx| {
                if let Some(u) = upnp {
                    u.handle_ssdp(data, cx);
                }
            },
            now,
        );
    }

    /// The answer to [`PortMapOutput::Http`] `id` (`Err`: the request failed, with why).
    pub fn handle_http(&mut self, id: u64, result: Result<HttpAnswer, String>, now: Instant) {
        self.step(
            |_, upnp, cx| {
                if let Some(u) = upnp {
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
            |natpmp, upnp, cx| {
                if let Some(n) = natpmp {
                    n.handle_timeout(cx);
                }
                if let Some(u) = upnp {
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
        let clients =
            [self.natpmp.as_ref().and_then(NatPmpClient::wake), self.upnp.as_ref().and_then(UpnpClient::wake)];
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
            |natpmp, upnp, cx| {
                if let Some(n) = natpmp {
                    n.shutdown(cx);
                }
                if let Some(u) = upnp {
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
        let removing = self.natpmp.as_ref().is_some_and(NatPmpClient::removing)
            || self.upnp.as_ref().is_some_and(UpnpClient::removing);
        !removing || self.timed_out
    }
}

impl PortMapper {
    /// Every wanted mapping on every protocol that is on.
    pub fn status(&self) -> Vec<MappingStatus> {
        let natpmp = self.natpmp.iter().flat_map(|n| n.slots.iter().map(|s| (Via::NatPmp, s)));
        let upnp = self.upnp.iter().flat_map(|u| u.slots.iter().map(|s| (Via::Upnp, s)));
        let wanted = self.wanted.iter().cycle();
        natpmp
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

    /// The external address of a protocol (UPnP first), if a gateway told one we believe.
    pub fn external_ip(&self) -> Option<Ipv4Addr> {
        self.upnp.as_ref().and_then(|u| u.external_ip).or_else(|| self.natpmp.as_ref().and_then(|n| n.external_ip))
    }

    /// The external port of the first mapping of `(protocol, internal_port)` in place, and
    /// the external address of the gateway that made it (if it told one we believe).
    pub fn external(&self, protocol: Protocol, internal_port: u16) -> Option<(Option<Ipv4Addr>, u16)> {
        let i = self.wanted.iter().position(|&w| w == (protocol, internal_port))?;
        let upnp = self.upnp.as_ref().and_then(|u| Some((u.external_ip, u.slots[i].external_port()?)));
        upnp.or_else(|| self.natpmp.as_ref().and_then(|n| Some((n.external_ip, n.slots[i].external_port()?))))
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
