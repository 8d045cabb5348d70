//! The daemon's state, shared by every request: [`Daemon`], and the version it reports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_channel::Sender;
use serde_json::Value;
use shoal_core::Config;

use super::debug_monitor::Monitor;
use super::downloads::Library;
use super::events::EventBus;
use super::settings::Settings;
use super::store::Store;
use crate::rt::Rt;

/// The version shown in `events_start` and the Swagger description.
pub(super) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The daemon's state, shared by every request.
pub struct Daemon {
    pub(super) settings: Mutex<Settings>,
    /// The key in force (changing `[api] key` takes effect at the next start).
    pub(super) key: String,
    /// Host names accepted in `Host` besides IP literals and `localhost` (`[api] allowed_hosts`).
    pub(super) allowed_hosts: Vec<String>,
    pub(super) http_addr: SocketAddr,
    pub(super) peer_addrs: Vec<SocketAddr>,
    pub(super) events: Arc<EventBus>,
    pub(super) swagger: Value,
    pub(super) stop: Sender<()>,
    /// The engine's tunables (for `/libtorrent/settings`).
    pub(super) engine_config: Config,
    /// The downloads, in the engine and in resume data.
    pub(super) library: Library,
    /// The runtime the daemon's tasks, blocking work and timers run on.
    pub(super) rt: Rt,
    /// The metadata store (search, popular torrents).
    pub(super) store: Arc<Store>,
    pub(super) state_dir: PathBuf,
    /// CPU and memory history and the log ring, for `/debug/*`.
    pub(super) monitor: Monitor,
    /// The SOCKS5 proxy of the session, which web requests (`.torrent` URLs) use too.
    pub(super) proxy: Option<shoal_host::Proxy>,
}

impl Daemon {
    /// The settings tree with the values in force filled in.
    pub(super) fn settings_tree(&self) -> Value {
        let mut tree = self.settings.lock().unwrap_or_else(|e| e.into_inner()).tree();
        let api = &mut tree["api"];
        api["key"] = Value::from(self.key.as_str());
        api["http_enabled"] = Value::Bool(true);
        api["http_port"] = Value::from(self.http_addr.port());
        api["http_host"] = Value::from(self.http_addr.ip().to_string());
        if let Some(a) = self.peer_addrs.first() {
            tree["libtorrent"]["port"] = Value::from(a.port());
        }
        tree
    }

    /// Every port bound: the REST API's and the engine's.
    pub(super) fn ports(&self) -> Vec<u16> {
        let mut ports = vec![self.http_addr.port()];
        for a in &self.peer_addrs {
            if !ports.contains(&a.port()) {
                ports.push(a.port());
            }
        }
        ports
    }

    /// Where downloads go when `PUT /downloads` names no destination:
    /// `download_defaults.saveas`.
    pub(super) fn default_destination(&self) -> PathBuf {
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        PathBuf::from(s.get("download_defaults", "saveas").as_str().unwrap_or("."))
    }

    pub(super) fn request_stop(&self) {
        let _ = self.stop.try_send(());
    }
}
