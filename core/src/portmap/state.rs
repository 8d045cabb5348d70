//! Where each wanted mapping is, for status pages.

use crate::types::Instant;

use super::protocol::{Protocol, Via};

/// Where a wanted mapping is on one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappingState {
    /// Asked for (or waiting for the gateway to be found).
    Pending,
    /// The gateway forwards `external_port` to us until `expires` (`None`: a permanent
    /// mapping, as IGD:1 routers that refuse leases make).
    Mapped {
        /// The port open on the gateway.
        external_port: u16,
        /// When the lease ends unless renewed.
        expires: Option<Instant>,
    },
    /// The last attempt failed; it is retried later.
    Failed {
        /// Why, for the log and the status.
        error: String,
    },
    /// Being removed (shutting down).
    Removing,
    /// Removed, or never made before shutdown.
    Removed,
}

/// One wanted mapping on one protocol, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingStatus {
    /// The protocol that maps it.
    pub via: Via,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Our port.
    pub internal_port: u16,
    /// Where it is.
    pub state: MappingState,
}
