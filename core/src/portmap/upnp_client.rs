//! The UPnP side of the mapper: SSDP discovery, the device description, then SOAP actions on
//! the gateway's WANIPConnection (or WANPPPConnection) service for every wanted mapping.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::types::Instant;

use super::address::usable_external_ip;
use super::cx::Cx;
use super::igd::{self, Action, IgdError, Service};
use super::output::{HttpAnswer, HttpRequest, PortMapEvent, PortMapOutput};
use super::protocol::Via;
use super::slot::{backoff, Slot};
use super::ssdp;
use super::state::MappingState;

/// Searches sent before concluding no gateway answers (UDP is lossy; UDA suggests a few).
const SEARCHES: u32 = 3;
/// How long to wait for answers to one search: the devices' `MX` plus a second of travel.
const SEARCH_WAIT: Duration = Duration::from_secs(ssdp::MX_SECS + 1);
/// Gateways remembered from the answers (one LAN rarely has more than one or two).
const MAX_DEVICES: usize = 4;
/// Other external ports tried, one after another, when the one asked for is another client's
/// (error 718): a few, like libtorrent, so that a router full of mappings costs a few requests.
const CONFLICT_RETRIES: u16 = 4;

/// Where discovery is.
#[derive(Debug)]
enum Phase {
    /// M-SEARCH sent `attempt` times; the next at `wake`.
    Searching { attempt: u32, wake: Instant },
    /// Fetching the description of `locations[0]`.
    Describing,
    /// The gateway's service, and our LAN address as it sees us.
    Ready { service: Service, local_ip: Ipv4Addr },
    /// No usable gateway; search again at `wake`.
    Absent { wake: Instant, failures: u32 },
}

/// How the gateway answered a mapping action.
#[derive(Debug)]
enum Outcome {
    Done,
    /// Error 725: no leases, only permanent mappings.
    PermanentOnly,
    /// Error 718: the external port is taken.
    Conflict,
    Failed(String),
}

/// What an HTTP request of ours was for.
#[derive(Debug, Clone)]
enum Pending {
    Description,
    ExternalIp,
    Mapping { slot: usize, action: Action },
}

/// UPnP state for every wanted mapping.
#[derive(Debug)]
pub(crate) struct UpnpClient {
    phase: Phase,
    /// Description URLs from the SSDP answers, the one being described first.
    locations: Vec<String>,
    lease: u32,
    description: String,
    /// Set after error 725: ask for lease 0 from then on.
    permanent_only: bool,
    pub(crate) external_ip: Option<Ipv4Addr>,
    pub(crate) slots: Vec<Slot>,
    /// Conflicts (error 718) met by each mapping so far: it asks for its port plus this.
    conflicts: Vec<u16>,
    requests: HashMap<u64, Pending>,
    /// Shutting down: no more discovery or mapping.
    stopping: bool,
}

impl UpnpClient {
    pub(crate) fn new(lease: Duration, description: String, mappings: usize) -> UpnpClient {
        UpnpClient {
            phase: Phase::Absent { wake: Instant::ZERO, failures: 0 },
            locations: Vec::new(),
            lease: u32::try_from(lease.as_secs()).unwrap_or(u32::MAX),
            description,
            permanent_only: false,
            external_ip: None,
            slots: (0..mappings).map(|_| Slot::new()).collect(),
            conflicts: vec![0; mappings],
            requests: HashMap::new(),
            stopping: false,
        }
    }

    /// Sends the first search.
    pub(crate) fn start(&mut self, cx: &mut Cx<'_>) {
        self.search(1, cx);
    }

    fn search(&mut self, attempt: u32, cx: &mut Cx<'_>) {
        self.locations.clear();
        self.phase = Phase::Searching { attempt, wake: cx.now + SEARCH_WAIT };
        cx.push(PortMapOutput::Ssdp { data: ssdp::search() });
    }

    pub(crate) fn wake(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        match self.phase {
            Phase::Searching { wake, .. } | Phase::Absent { wake, .. } => Some(wake),
            Phase::Describing => None,
            // Slots only have timers once the service is known.
            Phase::Ready { .. } => self.slots.iter().filter_map(|s| s.wake).min(),
        }
    }

    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>) {
        if self.stopping {
            return;
        }
        let now = cx.now;
        match self.phase {
            Phase::Searching { attempt, wake } if wake <= now => {
                if attempt < SEARCHES {
                    self.search(attempt + 1, cx);
                } else {
                    self.absent("no UPnP gateway answered", cx);
                }
            }
            Phase::Absent { wake, .. } if wake <= now => self.search(1, cx),
            Phase::Ready { .. } => {
                for i in 0..self.slots.len() {
                    if self.slots[i].wake.is_some_and(|w| w <= now) && !self.slots[i].removing() {
                        self.slots[i].wake = None;
                        self.add(i, cx);
                    }
                }
            }
            _ => {}
        }
    }

    /// Discovery failed: every mapping fails with `error`, and a new search waits a backoff.
    fn absent(&mut self, error: &str, cx: &mut Cx<'_>) {
        let now = cx.now;
        let failures = match self.phase {
            Phase::Absent { failures, .. } => failures,
            _ => self.slots.first().map_or(0, |s| s.failures),
        } + 1;
        self.phase = Phase::Absent { wake: now + backoff(failures), failures };
        for (slot, &(protocol, internal_port)) in self.slots.iter_mut().zip(cx.wanted) {
            slot.fail(error.to_string(), now);
            slot.wake = None;
            let error = error.to_string();
            cx.out.push(PortMapOutput::Event(PortMapEvent::Failed { via: Via::Upnp, protocol, internal_port, error }));
        }
    }

    /// A datagram on the SSDP socket.
    pub(crate) fn handle_ssdp(&mut self, data: &[u8], cx: &mut Cx<'_>) {
        if self.stopping || !matches!(self.phase, Phase::Searching { .. } | Phase::Describing) {
            return;
        }
        let Ok(answer) = ssdp::parse(data) else { return };
        if self.locations.len() >= MAX_DEVICES || self.locations.contains(&answer.location) {
            return;
        }
        self.locations.push(answer.location);
        if matches!(self.phase, Phase::Searching { .. }) {
            self.describe(cx);
        }
    }

    fn describe(&mut self, cx: &mut Cx<'_>) {
        self.phase = Phase::Describing;
        let url = self.locations[0].clone();
        self.request(Pending::Description, HttpRequest { id: 0, url, soap: None }, cx);
    }

    fn request(&mut self, what: Pending, mut req: HttpRequest, cx: &mut Cx<'_>) {
        *cx.ids += 1;
        req.id = *cx.ids;
        self.requests.insert(req.id, what);
        cx.push(PortMapOutput::Http(req));
    }

    fn action(&mut self, action: Action, what: Pending, cx: &mut Cx<'_>) {
        let Phase::Ready { service, .. } = &self.phase else { return };
        let soap = Some((action.soap_action(&service.service_type), action.body(&service.service_type)));
        let req = HttpRequest { id: 0, url: service.control_url.clone(), soap };
        self.request(what, req, cx);
    }

    /// Sends `AddPortMapping` for slot `i`.
    fn add(&mut self, i: usize, cx: &mut Cx<'_>) {
        let Phase::Ready { local_ip, .. } = self.phase else { return };
        let (protocol, internal_port) = cx.wanted[i];
        let slot = &mut self.slots[i];
        if !matches!(slot.state, MappingState::Mapped { .. }) {
            slot.state = MappingState::Pending;
        }
        slot.attempt = 1;
        let action = Action::AddPortMapping {
            protocol,
            external_port: slot.external_port().unwrap_or_else(|| conflict_port(internal_port, self.conflicts[i])),
            internal_port,
            client: local_ip,
            lease_secs: if self.permanent_only { 0 } else { self.lease },
            description: format!("{} {protocol} {internal_port}", self.description),
        };
        self.action(action.clone(), Pending::Mapping { slot: i, action }, cx);
    }

    /// The answer to one of our HTTP requests (`Err`: it failed on the way).
    pub(crate) fn handle_http(&mut self, id: u64, result: Result<HttpAnswer, String>, cx: &mut Cx<'_>) {
        let Some(what) = self.requests.remove(&id) else { return };
        match what {
            Pending::Description => self.described(result, cx),
            Pending::ExternalIp => {
                let answer = result.and_then(|a| {
                    igd::parse_answer(&Action::GetExternalIpAddress, a.status, &a.body).map_err(|e| e.to_string())
                });
                let event = match answer {
                    Ok(igd::Answer::ExternalIp(ip)) => {
                        let usable = usable_external_ip(ip);
                        self.external_ip = usable.then_some(ip);
                        PortMapEvent::ExternalIp { via: Via::Upnp, ip, usable }
                    }
                    Ok(igd::Answer::Done) => return,
                    Err(error) => PortMapEvent::ExternalIpFailed { via: Via::Upnp, error },
                };
                cx.push(PortMapOutput::Event(event));
            }
            Pending::Mapping { slot: i, action } => {
                let outcome = match result.map(|a| igd::parse_answer(&action, a.status, &a.body)) {
                    Ok(Ok(_)) => Outcome::Done,
                    Ok(Err(IgdError::Upnp { code: igd::ONLY_PERMANENT_LEASES, .. })) => Outcome::PermanentOnly,
                    Ok(Err(IgdError::Upnp { code: igd::CONFLICT_IN_MAPPING_ENTRY, .. })) => Outcome::Conflict,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(e) => Outcome::Failed(e),
                };
                self.mapping_answer(i, action, outcome, cx);
            }
        }
    }

    fn described(&mut self, result: Result<HttpAnswer, String>, cx: &mut Cx<'_>) {
        if self.stopping {
            return;
        }
        let location = self.locations.first().cloned().unwrap_or_default();
        let found = result.and_then(|a| {
            let service = igd::parse_description(&location, &a.body).map_err(|e| e.to_string())?;
            let local_ip = a.local_ip.ok_or_else(|| "our LAN address toward the gateway is unknown".to_string())?;
            Ok((service, local_ip))
        });
        match found {
            Ok((service, local_ip)) => {
                self.phase = Phase::Ready { service, local_ip };
                self.action(Action::GetExternalIpAddress, Pending::ExternalIp, cx);
                for i in 0..self.slots.len() {
                    self.add(i, cx);
                }
            }
            Err(e) => {
                self.locations.remove(0);
                if self.locations.is_empty() {
                    self.absent(&format!("gateway description {location}: {e}"), cx);
                } else {
                    self.describe(cx);
                }
            }
        }
    }

    fn mapping_answer(&mut self, i: usize, action: Action, outcome: Outcome, cx: &mut Cx<'_>) {
        let now = cx.now;
        let (protocol, internal_port) = cx.wanted[i];
        let slot = &mut self.slots[i];
        let error = match outcome {
            Outcome::Done => None,
            Outcome::PermanentOnly => Some("UPnP error 725 (only permanent leases)".to_string()),
            Outcome::Conflict => Some("UPnP error 718 (the external port is mapped to another client)".to_string()),
            Outcome::Failed(ref e) => Some(e.clone()),
        };
        match action {
            Action::DeletePortMapping { .. } => {
                slot.state = MappingState::Removed;
                slot.wake = None;
                cx.push(PortMapOutput::Event(PortMapEvent::Removed { via: Via::Upnp, protocol, internal_port, error }));
            }
            Action::AddPortMapping { external_port, lease_secs, .. } => {
                if slot.removing() {
                    return; // shutdown sent the deletion already
                }
                match (outcome, error) {
                    (Outcome::Done, _) => {
                        let renewal = slot.mapped_before && slot.external_port().is_some();
                        let lease = (lease_secs > 0).then(|| Duration::from_secs(lease_secs.into()));
                        slot.mapped(external_port, lease, now);
                        cx.push(PortMapOutput::Event(PortMapEvent::Mapped {
                            via: Via::Upnp,
                            protocol,
                            internal_port,
                            external_port,
                            renewal,
                        }));
                    }
                    // OnlyPermanentLeasesSupported: ask again, without a lease.
                    (Outcome::PermanentOnly, _) if lease_secs > 0 => {
                        self.permanent_only = true;
                        self.add(i, cx);
                    }
                    // ConflictInMappingEntry: the next port up, a few times (a port we held
                    // and lost to someone else is given up for a new one too).
                    (Outcome::Conflict, _) if self.conflicts[i] < CONFLICT_RETRIES => {
                        self.conflicts[i] += 1;
                        if matches!(slot.state, MappingState::Mapped { .. }) {
                            slot.state = MappingState::Pending;
                        }
                        self.add(i, cx);
                    }
                    (_, error) => {
                        let error = error.unwrap_or_default();
                        self.conflicts[i] = 0; // the retry after the backoff starts over
                        slot.fail(error.clone(), now);
                        cx.push(PortMapOutput::Event(PortMapEvent::Failed {
                            via: Via::Upnp,
                            protocol,
                            internal_port,
                            error,
                        }));
                    }
                }
            }
            Action::GetExternalIpAddress => {}
        }
    }

    /// Deletes every mapping made (or being made).
    pub(crate) fn shutdown(&mut self, cx: &mut Cx<'_>) {
        self.stopping = true;
        for i in 0..self.slots.len() {
            let (protocol, internal_port) = cx.wanted[i];
            let slot = &mut self.slots[i];
            let made = matches!(slot.state, MappingState::Mapped { .. })
                || matches!(slot.state, MappingState::Pending) && slot.attempt > 0;
            slot.wake = None;
            if !made || !matches!(self.phase, Phase::Ready { .. }) {
                slot.state = MappingState::Removed;
                continue;
            }
            let external_port = slot.external_port().unwrap_or(internal_port);
            slot.state = MappingState::Removing;
            let action = Action::DeletePortMapping { protocol, external_port };
            self.action(action.clone(), Pending::Mapping { slot: i, action }, cx);
        }
    }

    /// Whether a removal is still unanswered.
    pub(crate) fn removing(&self) -> bool {
        self.slots.iter().any(Slot::removing)
    }
}

/// The external port asked for after `conflicts` conflicts: our own, then the ports above it
/// (wrapping past 65535 to 1024: below are the system's).
fn conflict_port(internal_port: u16, conflicts: u16) -> u16 {
    let span = u32::from(u16::MAX) - 1024 + 1;
    let start = u32::from(internal_port.max(1024)) - 1024;
    u16::try_from(1024 + (start + u32::from(conflicts)) % span).unwrap_or(internal_port)
}
