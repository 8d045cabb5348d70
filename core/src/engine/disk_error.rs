//! Why a disk operation failed: what the runtime reports and the engine passes on in events.

/// Why a disk operation failed, as far as the engine cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskErrorKind {
    /// The file does not exist (deleted under us, or never created).
    NotFound,
    /// The disk is full.
    NoSpace,
    /// Permission denied.
    PermissionDenied,
    /// Anything else.
    Other,
}

/// A failed disk operation, reported by the runtime.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DiskError {
    /// Its kind.
    pub kind: DiskErrorKind,
    /// The OS message, with the path.
    pub message: String,
}
