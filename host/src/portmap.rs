//! Runs the core's [`PortMapper`] beside the engine: its NAT-PMP and SSDP sockets, its HTTP
//! requests (through the policy-checking agent), its timers. What it learns (the external
//! port and address) goes to the engine as the address to announce; its state is kept for
//! [`crate::Handle::port_mapping`], and the log says what was mapped, renewed, failed or removed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use shoal_core::portmap::{
    self, HttpAnswer, HttpRequest, MappingStatus, PortMapConfig, PortMapEvent, PortMapOutput, PortMapper, Protocol, Via,
};
use shoal_core::{Instant, NetPolicy};

use crate::command::Command;
use crate::gateway;
use crate::runtime::Runtime;
use crate::session::PortMapSettings;

/// What port mapping has done, for status pages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMapReport {
    /// Every wanted mapping on each protocol that is on.
    pub mappings: Vec<MappingStatus>,
    /// The external address we announce, if a gateway told one we believe.
    pub external_ip: Option<Ipv4Addr>,
    /// Addresses gateways claimed that we do not believe (private, loopback, unspecified).
    pub rejected_ips: Vec<(Via, Ipv4Addr)>,
    /// Mappings made.
    pub mapped: u64,
    /// Leases renewed.
    pub renewed: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Mappings removed.
    pub removed: u64,
}

/// The running driver, owned by the engine task.
pub(crate) struct PortMapTask<R: Runtime> {
    stop: Sender<Msg>,
    done: Receiver<()>,
    _task: R::Task,
}

impl<R: Runtime> PortMapTask<R> {
    /// Starts removing the mappings.
    pub(crate) fn begin_stop(&self) {
        let _ = self.stop.try_send(Msg::Stop);
    }

    /// Waits until the mappings are removed (or the removal's time is up).
    pub(crate) async fn stopped(self) {
        self.begin_stop();
        let _ = self.done.recv().await;
    }
}

/// What the driver's loop is woken by.
enum Msg {
    NatPmp(SocketAddr, Vec<u8>),
    Ssdp(Vec<u8>),
    Http(u64, Result<HttpAnswer, String>),
    Stop,
}

/// Largest datagram read from either socket (answers are far smaller; the parsers bound them).
const MAX_DATAGRAM: usize = 4096;
/// Longest wait for the gateway to confirm removals at shutdown.
const REMOVAL_WAIT: Duration = Duration::from_secs(3);
/// One HTTP exchange with the gateway (a LAN device answers in milliseconds).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the driver needs from the session.
pub(crate) struct Setup {
    pub(crate) settings: PortMapSettings,
    pub(crate) policy: NetPolicy,
    /// The listen port; TCP is mapped, and UDP too when `udp` (the DHT).
    pub(crate) port: u16,
    pub(crate) udp: bool,
    /// A port the user announces instead (`--announce-port`): kept over a mapping's.
    pub(crate) announce_port: Option<u16>,
    pub(crate) commands: Sender<Command>,
    pub(crate) report: Arc<Mutex<PortMapReport>>,
}

/// Starts the driver, or says why it cannot run (then nothing was sent).
pub(crate) fn start<R: Runtime>(setup: Setup) -> Result<PortMapTask<R>, String> {
    let gateway = setup.settings.gateway.or_else(gateway::default_gateway);
    let natpmp_gw = gateway
        .filter(|gw| setup.settings.natpmp && setup.policy.allows(SocketAddr::from((*gw, portmap::natpmp::PORT))));
    if setup.settings.natpmp && natpmp_gw.is_none() {
        tracing::warn!("NAT-PMP: no default gateway the network policy allows ({gateway:?}); NAT-PMP is off");
    }
    let upnp = setup.settings.upnp && setup.policy.allows(SocketAddr::V4(portmap::ssdp::GROUP));
    if setup.settings.upnp && !upnp {
        tracing::warn!("UPnP: the network policy refuses SSDP multicast; UPnP is off");
    }
    // PCP requests carry our address as the gateway sees it; found by a route lookup.
    let client_ip = natpmp_gw
        .filter(|_| setup.settings.pcp)
        .and_then(|gw| gateway::local_ip_toward(SocketAddr::from((gw, portmap::pcp::PORT))));
    let config = PortMapConfig {
        upnp,
        natpmp: natpmp_gw.is_some(),
        pcp: client_ip.is_some(),
        gateway: natpmp_gw,
        client_ip,
        pcp_nonce: pcp_nonce(),
        ..PortMapConfig::default()
    };
    let mut wanted = vec![(Protocol::Tcp, setup.port)];
    if setup.udp {
        wanted.push((Protocol::Udp, setup.port));
    }
    let mapper = PortMapper::new(config, &wanted);
    if !mapper.is_enabled() {
        return Err("no port-mapping protocol can run".into());
    }
    let natpmp = udp_socket::<R>().map_err(|e| format!("NAT-PMP socket: {e}"))?;
    let ssdp = udp_socket::<R>().map_err(|e| format!("SSDP socket: {e}"))?;
    let (tx, rx) = async_channel::unbounded();
    let (done_tx, done) = async_channel::bounded(1);
    let agent = crate::net::http_agent(setup.policy, None, HTTP_TIMEOUT, false);
    let driver = Driver::<R> {
        mapper,
        setup,
        natpmp: Arc::new(natpmp),
        ssdp: Arc::new(ssdp),
        tx: tx.clone(),
        agent,
        announced: None,
    };
    let task = R::spawn(async move {
        driver.run(rx).await;
        let _ = done_tx.try_send(());
    });
    Ok(PortMapTask { stop: tx, done, _task: task })
}

/// A fresh random PCP mapping nonce (RFC 6887 §11.1).
fn pcp_nonce() -> [u8; 12] {
    let (a, b) = (crate::random::random_seed().to_be_bytes(), crate::random::random_seed().to_be_bytes());
    std::array::from_fn(|i| if i < 8 { a[i] } else { b[i - 8] })
}

/// An unconnected IPv4 UDP socket on an ephemeral port.
fn udp_socket<R: Runtime>() -> std::io::Result<R::Udp> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    s.set_nonblocking(true)?;
    R::udp_from_std(s.into())
}

struct Driver<R: Runtime> {
    mapper: PortMapper,
    setup: Setup,
    natpmp: Arc<R::Udp>,
    ssdp: Arc<R::Udp>,
    tx: Sender<Msg>,
    agent: ureq::Agent,
    /// What the engine was last told to announce.
    announced: Option<(Option<Ipv4Addr>, u16)>,
}

impl<R: Runtime> Driver<R> {
    async fn run(mut self, rx: Receiver<Msg>) {
        let origin = std::time::Instant::now();
        let now = || Instant::from_micros(origin.elapsed().as_micros() as u64);
        let _readers = [self.reader(self.natpmp.clone(), true), self.reader(self.ssdp.clone(), false)];
        self.mapper.start(now());
        loop {
            self.drain().await;
            if self.mapper.is_done() {
                break;
            }
            let deadline = self.mapper.poll_timeout().map(|t| origin + Duration::from_micros(t.as_micros()));
            let sleep = async {
                match deadline {
                    Some(at) => R::sleep_until(at).await,
                    None => future::pending().await,
                }
                None
            };
            match future::or(async { rx.recv().await.ok() }, sleep).await {
                Some(Msg::NatPmp(from, data)) => self.mapper.handle_natpmp(from, &data, now()),
                Some(Msg::Ssdp(data)) => self.mapper.handle_ssdp(&data, now()),
                Some(Msg::Http(id, result)) => self.mapper.handle_http(id, result, now()),
                Some(Msg::Stop) => self.mapper.shutdown(now(), REMOVAL_WAIT),
                None => self.mapper.handle_timeout(now()),
            }
        }
        self.report(|_| {});
    }

    /// A task feeding what arrives on `socket` into the loop.
    fn reader(&self, socket: Arc<R::Udp>, natpmp: bool) -> R::Task {
        let tx = self.tx.clone();
        R::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                let Ok((n, from)) = R::udp_recv_from(&socket, &mut buf).await else {
                    R::sleep_until(std::time::Instant::now() + Duration::from_millis(100)).await;
                    continue;
                };
                let data = buf[..n].to_vec();
                let msg = if natpmp { Msg::NatPmp(from, data) } else { Msg::Ssdp(data) };
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
        })
    }

    async fn drain(&mut self) {
        while let Some(o) = self.mapper.poll_output() {
            match o {
                PortMapOutput::NatPmp { to, data } => self.send(&self.natpmp.clone(), SocketAddr::V4(to), &data).await,
                PortMapOutput::Ssdp { data } => {
                    self.send(&self.ssdp.clone(), SocketAddr::V4(portmap::ssdp::GROUP), &data).await
                }
                PortMapOutput::Http(req) => self.http(req),
                PortMapOutput::Event(e) => self.event(e),
            }
        }
        self.follow_mapping();
    }

    async fn send(&self, socket: &R::Udp, to: SocketAddr, data: &[u8]) {
        // Checked again here, on the address itself, as every other send is.
        if !self.setup.policy.allows(to) {
            tracing::warn!("port mapping: {}", shoal_core::Refused::Addr(to));
            return;
        }
        if let Err(e) = R::udp_send_to(socket, data, to).await {
            tracing::debug!("port mapping: sending to {to}: {e}");
        }
    }

    /// Runs one HTTP request on the blocking pool.
    fn http(&self, req: HttpRequest) {
        let (agent, tx) = (self.agent.clone(), self.tx.clone());
        R::spawn_blocking(move || {
            let result = http_exchange(&agent, &req);
            let _ = tx.send_blocking(Msg::Http(req.id, result));
        });
    }

    fn event(&mut self, e: PortMapEvent) {
        match &e {
            PortMapEvent::Mapped { via, protocol, internal_port, external_port, renewal } => {
                let what = if *renewal { "renewed" } else { "mapped" };
                tracing::info!("{via}: {what} {protocol} {internal_port} -> external port {external_port}");
            }
            PortMapEvent::Failed { via, protocol, internal_port, error } => {
                tracing::warn!("{via}: mapping {protocol} {internal_port} failed: {error}");
            }
            PortMapEvent::Removed { via, protocol, internal_port, error: None } => {
                tracing::info!("{via}: removed the mapping of {protocol} {internal_port}");
            }
            PortMapEvent::Removed { via, protocol, internal_port, error: Some(error) } => {
                tracing::warn!("{via}: removing the mapping of {protocol} {internal_port}: {error}");
            }
            PortMapEvent::ExternalIp { via, ip, usable: true } => tracing::info!("{via}: external address {ip}"),
            PortMapEvent::ExternalIp { via, ip, usable: false } => {
                tracing::warn!("{via}: the gateway claims external address {ip}, which no peer could reach; not used");
            }
            PortMapEvent::ExternalIpFailed { via, error } => tracing::warn!("{via}: no external address: {error}"),
            PortMapEvent::Unsupported { via, fallback: Some(to) } => {
                tracing::info!("{via}: the gateway does not speak it; using {to}");
            }
            PortMapEvent::Unsupported { via, fallback: None } => {
                tracing::warn!("{via}: the gateway does not speak it, and nothing else is on");
            }
        }
        self.report(|r| match e {
            PortMapEvent::Mapped { renewal: false, .. } => r.mapped += 1,
            PortMapEvent::Mapped { renewal: true, .. } => r.renewed += 1,
            PortMapEvent::Failed { .. } => r.failed += 1,
            PortMapEvent::Removed { .. } => r.removed += 1,
            PortMapEvent::ExternalIp { via, ip, usable: false } if !r.rejected_ips.contains(&(via, ip)) => {
                r.rejected_ips.push((via, ip));
            }
            _ => {}
        });
    }

    /// Refreshes the shared report, changed by `f`.
    fn report(&self, f: impl FnOnce(&mut PortMapReport)) {
        let mut r = self.setup.report.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        r.mappings = self.mapper.status();
        r.external_ip = self.mapper.external_ip();
    }

    /// Tells the engine what to announce when the TCP mapping's result changed.
    fn follow_mapping(&mut self) {
        let wanted = self.mapper.external(Protocol::Tcp, self.setup.port);
        if wanted == self.announced {
            return;
        }
        self.announced = wanted;
        self.report(|_| {});
        let (ip, port) = match wanted {
            Some((ip, port)) => (ip, self.setup.announce_port.or(Some(port))),
            None => (None, self.setup.announce_port),
        };
        let call: crate::command::EngineCall =
            Box::new(move |engine, now| engine.set_announce_addr(ip.map(Into::into), port, now));
        let _ = self.setup.commands.try_send(Command::Engine(call));
        // After the send: a command that follows this line in the log reaches the engine after it.
        match (ip, port) {
            (Some(ip), Some(port)) => tracing::info!("announcing {ip}:{port} to trackers and the DHT from now on"),
            (None, Some(port)) => tracing::info!("announcing port {port} to trackers and the DHT from now on"),
            (_, None) => tracing::info!("announcing the listen port to trackers and the DHT from now on"),
        }
    }
}

/// One GET (a description) or SOAP POST, with our address toward the device.
fn http_exchange(agent: &ureq::Agent, req: &HttpRequest) -> Result<HttpAnswer, String> {
    let uri: ureq::http::Uri = req.url.parse().map_err(|e| format!("{}: {e}", req.url))?;
    let device = match (uri.host().and_then(|h| h.parse::<Ipv4Addr>().ok()), uri.port_u16().unwrap_or(80)) {
        (Some(ip), port) => SocketAddr::from((ip, port)),
        (None, _) => return Err(format!("{}: not an IPv4 address", req.url)),
    };
    let response = match &req.soap {
        None => agent.get(&req.url).call(),
        Some((action, body)) => agent
            .post(&req.url)
            .header("Content-Type", "text/xml; charset=\"utf-8\"")
            .header("SOAPAction", action)
            .send(body.as_bytes()),
    };
    let mut response = response.map_err(|e| crate::net::http_error(&e))?;
    let status = response.status().as_u16();
    let limit = portmap::igd::MAX_DESCRIPTION as u64 + 1;
    let body = response.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| e.to_string())?;
    Ok(HttpAnswer { status, body, local_ip: gateway::local_ip_toward(device) })
}
