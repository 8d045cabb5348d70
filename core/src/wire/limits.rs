//! How much a peer may send: the bounds the decoder enforces.

/// Bounds the decoder enforces on what a peer may send.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Largest frame accepted, counting the id byte but not the 4-byte length prefix.
    pub max_message_len: u32,
    /// Largest block a peer may send us in `piece` or ask of us in `request`.
    pub max_block_len: u32,
}

impl Default for Limits {
    /// 256 KiB frames (room for 128 KiB blocks and bitfields of two million pieces) and
    /// 128 KiB blocks, the limits libtorrent applies too.
    fn default() -> Self {
        Limits { max_message_len: 256 * 1024, max_block_len: 128 * 1024 }
    }
}
