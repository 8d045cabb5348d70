//! Small value types shared by every part of the engine.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point on the engine's clock, in microseconds since an origin the runtime chooses.
///
/// The core never reads a clock: every entry point is handed `now`, so a simulator can start
/// at zero and jump from deadline to deadline.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);
    /// A point later than any the engine will see; used for "no deadline".
    pub const FAR_FUTURE: Instant = Instant(u64::MAX / 2);

    /// The instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.as_micros().min(u64::MAX as u128) as u64))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Error for a hex string that is not 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hexadecimal digits")]
pub struct HexError;

fn parse_hex20(s: &str) -> Result<[u8; 20], HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != 40 {
        return Err(HexError);
    }
    let mut out = [0u8; 20];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16).ok_or(HexError)?;
        let lo = (pair[1] as char).to_digit(16).ok_or(HexError)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// The SHA-1 of a torrent's bencoded `info` dictionary: the torrent's identity.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Parses 40 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        parse_hex20(s).map(InfoHash)
    }

    /// Lower-case hex, as Tribler and most trackers print it.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

/// A peer's 20-byte id from the handshake.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct PeerId(pub [u8; 20]);

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", String::from_utf8_lossy(&self.0))
    }
}

/// A SHA-1 digest of one piece.
pub type PieceHash = [u8; 20];

/// Identifies a torrent inside one engine.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TorrentId(pub u32);

/// Identifies a peer connection inside one engine; never reused.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ConnId(pub u64);

/// Identifies a disk, hash or HTTP job the engine asked the runtime to run; never reused.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct JobId(pub u64);

/// Identifies a UDP tracker exchange: the socket the runtime keeps for it from its first
/// datagram until the engine ends it. Never reused.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ExchangeId(pub u64);

impl ExchangeId {
    /// The exchange the engine tracks under job id `job` (they share one counter).
    pub(crate) fn of(job: JobId) -> Self {
        ExchangeId(job.0)
    }

    /// The job id the engine tracks this exchange under.
    pub(crate) fn job(self) -> JobId {
        JobId(self.0)
    }
}

/// The size of a block: the unit of requests on the wire.
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// One block of a piece: what a single `request` message asks for.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BlockRef {
    /// Piece index.
    pub piece: u32,
    /// Byte offset inside the piece (a multiple of [`BLOCK_SIZE`]).
    pub offset: u32,
    /// Length in bytes (at most [`BLOCK_SIZE`]).
    pub len: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_hex_round_trip() {
        let h = InfoHash::from_hex("0123456789ABCDEF0123456789abcdef01234567").unwrap();
        assert_eq!(h.to_hex(), "0123456789abcdef0123456789abcdef01234567");
        assert!(InfoHash::from_hex("0123").is_err());
        assert!(InfoHash::from_hex("g123456789abcdef0123456789abcdef01234567").is_err());
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_micros(5);
        assert_eq!(t - Instant::from_micros(10), Duration::ZERO);
        assert_eq!((t + Duration::from_secs(1)).as_micros(), 1_000_005);
    }
}
