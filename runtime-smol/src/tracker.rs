//! Tracker transport: HTTP GETs and UDP datagrams. The protocol lives in shoal-core.

use std::time::Duration;

use async_channel::Sender;
use async_net::UdpSocket;
use futures_lite::future;
use shoal_core::JobId;

use crate::driver::Input;

/// Largest tracker response body we read.
const MAX_BODY: u64 = 4 << 20;

/// An HTTP client shared by all announces.
pub(crate) fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .user_agent(concat!("Shoal/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// Runs one HTTP GET on the blocking pool and reports the body.
pub(crate) fn http_get(agent: ureq::Agent, id: JobId, url: String, inputs: Sender<Input>) {
    smol::spawn(async move {
        let result = blocking::unblock(move || -> Result<Vec<u8>, String> {
            let mut resp = agent.get(&url).call().map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| e.to_string())?;
            if !status.is_success() && body.is_empty() {
                return Err(format!("HTTP {status}"));
            }
            Ok(body)
        })
        .await;
        let _ = inputs.send(Input::TrackerHttp(id, result)).await;
    })
    .detach();
}

/// The socket of one UDP tracker exchange.
pub(crate) struct UdpTracker {
    outgoing: Sender<Vec<u8>>,
    _task: smol::Task<()>,
}

impl UdpTracker {
    /// Resolves `host:port`, binds a socket and relays datagrams both ways until dropped.
    pub fn new(id: JobId, host: String, port: u16, inputs: Sender<Input>) -> Self {
        let (outgoing, queue) = async_channel::unbounded::<Vec<u8>>();
        let task = smol::spawn(async move {
            let fail = |msg: String| {
                let inputs = inputs.clone();
                async move {
                    let _ = inputs.send(Input::TrackerUdp(id, Err(msg))).await;
                }
            };
            let addr = match async_net::resolve((host.as_str(), port)).await {
                Ok(addrs) if !addrs.is_empty() => addrs[0],
                Ok(_) => return fail(format!("{host}: no address")).await,
                Err(e) => return fail(format!("{host}: {e}")).await,
            };
            let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = match UdpSocket::bind(bind).await {
                Ok(s) => s,
                Err(e) => return fail(format!("bind: {e}")).await,
            };
            if let Err(e) = socket.connect(addr).await {
                return fail(format!("{addr}: {e}")).await;
            }
            let recv = async {
                let mut buf = vec![0u8; 4096];
                loop {
                    match socket.recv(&mut buf).await {
                        Ok(n) => {
                            if inputs.send(Input::TrackerUdp(id, Ok(buf[..n].to_vec()))).await.is_err() {
                                break;
                            }
                        }
                        // ICMP port unreachable and the like: the exchange's retries handle it.
                        Err(_) => async_io::Timer::after(Duration::from_millis(200)).await.pipe_unit(),
                    }
                }
            };
            let send = async {
                while let Ok(d) = queue.recv().await {
                    let _ = socket.send(&d).await;
                }
            };
            future::or(recv, send).await;
        });
        UdpTracker { outgoing, _task: task }
    }

    /// Sends a datagram.
    pub fn send(&self, data: Vec<u8>) {
        let _ = self.outgoing.try_send(data);
    }
}

trait PipeUnit {
    fn pipe_unit(self);
}

impl<T> PipeUnit for T {
    fn pipe_unit(self) {}
}
