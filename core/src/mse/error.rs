//! Why a handshake fails.

/// Why an MSE handshake failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, P-1 or not below P: the secret would be guessable.
    #[error("the peer's public key is outside the group")]
    BadPublicKey,
    /// No `HASH('req1', S)` within `MAX_PAD` bytes after the initiator's key.
    #[error("no req1 hash within 512 bytes of padding")]
    NoReq1,
    /// No encrypted VC within `MAX_PAD` bytes after the responder's key.
    #[error("no verification constant within 512 bytes of padding")]
    NoVc,
    /// `HASH('req2', SKEY)` names no torrent we have.
    #[error("the stream names no torrent we have")]
    UnknownTorrent,
    /// The decrypted verification constant is not eight zeros: the keys differ.
    #[error("the verification constant does not decrypt to zeros")]
    BadVc,
    /// A padding longer than `MAX_PAD`.
    #[error("padding of {0} bytes, more than 512")]
    PadTooLong(u16),
    /// An initial payload longer than [`MAX_INITIAL_PAYLOAD`](super::MAX_INITIAL_PAYLOAD).
    #[error("initial payload of {0} bytes, more than 1024")]
    PayloadTooLong(u16),
    /// The peer offers no method we allow.
    #[error("no common method: the peer provides {0:#x}")]
    NoCommonMethod(u32),
    /// The responder selected a method we did not offer, or not exactly one.
    #[error("the peer selected {0:#x}, which we did not offer")]
    BadSelect(u32),
    /// More bytes arrived during the handshake than it can hold.
    #[error("more bytes than a handshake holds")]
    TooMuchData,
    /// The connection ended before the handshake did.
    #[error("the connection ended during the handshake")]
    Truncated,
}
