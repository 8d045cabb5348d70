//! Runs a Shoal engine on tokio: one task owns the engine; sockets, disk, hashing and trackers
//! run around it and report back as inputs.
//!
//! Everything but the executor primitives lives in shoal-host, so [`Handle`], [`AddOptions`]
//! and [`SessionError`] here are the very same types as shoal-smol's: code written against a
//! handle runs on either runtime.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let session = shoal_tokio::Session::start(shoal_tokio::SessionConfig::default()).await?;
//! let handle = session.handle();
//! let bytes = std::fs::read("file.torrent")?;
//! let meta = shoal_core::Metainfo::from_bytes(&bytes)?;
//! let id = handle.add(shoal_tokio::AddOptions::new(meta, "downloads".into())).await?;
//! let events = handle.subscribe().await;
//! # let _ = (id, events);
//! handle.shutdown().await;
//! session.join().await;
//! # Ok(()) }
//! ```

mod runtime;

use std::net::SocketAddr;

pub use runtime::{AbortOnDrop, Tokio};

pub use shoal_host::{
    AddOptions, Checkpoint, DhtSettings, Handle, MagnetOptions, PortMapReport, PortMapSettings, SessionConfig,
    SessionError, Storage, StorageError,
};

/// A running session. Dropping it does not stop it: call [`Handle::shutdown`].
pub struct Session {
    handle: Handle,
    listen: Vec<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Binds the listeners and starts the engine task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O and time enabled (as `tokio::spawn` does).
    pub async fn start(config: SessionConfig) -> Result<Session, SessionError> {
        let (handle, listen, task) = shoal_host::start::<runtime::Tokio>(config).await?;
        Ok(Session { handle, listen, task: tokio::spawn(task.run()) })
    }

    /// A handle to drive the session from any task or thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The addresses actually bound (useful with port 0).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// Waits until the engine task has ended (after a shutdown).
    pub async fn join(self) {
        // The task only ends by returning, or by being cancelled when its runtime shuts down.
        let _ = self.task.await;
    }
}
