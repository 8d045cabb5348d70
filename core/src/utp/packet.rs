//! The uTP packet: a 20-byte header, a chain of extensions (selective ACK is the one uTP
//! defines) and the payload (BEP 29).

/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The protocol version this codec speaks (the low nibble of the first byte).
pub const VERSION: u8 = 1;
/// Extension number of the selective ACK.
const EXT_SACK: u8 = 1;
/// Extension number of the padding that fills a packet-size probe: one no uTP implementation
/// defines (receivers skip extensions they do not know, BEP 29).
pub(super) const EXT_PADDING: u8 = 0x7f;
/// The most bytes one extension carries beside its two-byte head.
const EXT_MAX: usize = 255;
/// The largest selective ACK bitmask kept, in bytes: 32 bytes cover 256 packets past the
/// cumulative ACK, more than any receive buffer of ours holds out of order.
pub const MAX_SACK_BYTES: usize = 32;

/// Why a datagram is not a uTP packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UtpError {
    /// Shorter than its header or than an extension claims.
    #[error("truncated uTP packet")]
    Truncated,
    /// A version other than 1.
    #[error("unknown uTP version {0}")]
    BadVersion(u8),
    /// A packet type other than the five.
    #[error("unknown uTP packet type {0}")]
    BadType(u8),
    /// A selective ACK of length zero.
    #[error("malformed uTP extension")]
    BadExtension,
}

/// The five packet types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketType {
    /// Carries payload.
    Data,
    /// The sender has no more data; carries the last sequence number.
    Fin,
    /// A bare acknowledgement (also the answer to a SYN).
    State,
    /// Ends the connection at once.
    Reset,
    /// Opens a connection.
    Syn,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<PacketType> {
        Some(match n {
            0 => PacketType::Data,
            1 => PacketType::Fin,
            2 => PacketType::State,
            3 => PacketType::Reset,
            4 => PacketType::Syn,
            _ => return None,
        })
    }

    fn nibble(self) -> u8 {
        match self {
            PacketType::Data => 0,
            PacketType::Fin => 1,
            PacketType::State => 2,
            PacketType::Reset => 3,
            PacketType::Syn => 4,
        }
    }
}

/// The fixed header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the packet is.
    pub kind: PacketType,
    /// The connection id the receiver knows the connection by.
    pub conn_id: u16,
    /// The sender's clock (low 32 bits of microseconds) when it sent the packet.
    pub timestamp: u32,
    /// The sender's last measured one-way delay: its clock minus the timestamp of the last
    /// packet it received from us.
    pub timestamp_diff: u32,
    /// The room left in the sender's receive buffer, in bytes.
    pub wnd_size: u32,
    /// This packet's sequence number (the next unsent one for a `State`).
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
}

/// A selective ACK: bit `i` (least significant bit of each byte first) says the packet
/// `ack_nr + 2 + i` arrived.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SelectiveAck {
    /// The bitmask, at most [`MAX_SACK_BYTES`] bytes (longer masks are cut when decoded).
    pub mask: Vec<u8>,
}

impl SelectiveAck {
    /// Offsets past `ack_nr + 2` whose packets arrived.
    pub fn received(&self) -> impl Iterator<Item = u16> + '_ {
        self.mask
            .iter()
            .enumerate()
            .flat_map(|(byte, &bits)| (0..8u16).filter(move |b| bits & (1 << b) != 0).map(move |b| byte as u16 * 8 + b))
    }
}

/// A decoded packet; the payload borrows from the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// The selective ACK extension, if present.
    pub sack: Option<SelectiveAck>,
    /// The payload (empty but for `Data`).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Decodes one datagram. Unknown extensions are skipped; every length is checked against
    /// what is left of the datagram.
    pub fn decode(bytes: &'a [u8]) -> Result<Packet<'a>, UtpError> {
        if bytes.len() < HEADER_LEN {
            return Err(UtpError::Truncated);
        }
        let version = bytes[0] & 0x0f;
        if version != VERSION {
            return Err(UtpError::BadVersion(version));
        }
        let kind = PacketType::from_nibble(bytes[0] >> 4).ok_or(UtpError::BadType(bytes[0] >> 4))?;
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Header {
            kind,
            conn_id: u16_at(2),
            timestamp: u32_at(4),
            timestamp_diff: u32_at(8),
            wnd_size: u32_at(12),
            seq_nr: u16_at(16),
            ack_nr: u16_at(18),
        };
        let mut next_ext = bytes[1];
        let mut rest = &bytes[HEADER_LEN..];
        let mut sack = None;
        // Each extension takes at least two bytes, so the chain ends within the datagram.
        while next_ext != 0 {
            let [following, len, tail @ ..] = rest else { return Err(UtpError::Truncated) };
            let len = usize::from(*len);
            if tail.len() < len {
                return Err(UtpError::Truncated);
            }
            if next_ext == EXT_SACK {
                if len == 0 {
                    return Err(UtpError::BadExtension);
                }
                sack = Some(SelectiveAck { mask: tail[..len.min(MAX_SACK_BYTES)].to_vec() });
            }
            next_ext = *following;
            rest = &tail[len..];
        }
        Ok(Packet { header, sack, payload: rest })
    }

    /// Encodes the packet into a datagram.
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.header, self.sack.as_ref(), 0, self.payload)
    }
}

/// Encodes a packet from its parts (the sender's payload stays where it is kept), with
/// `padding` bytes of padding extensions before the payload (none: 0; one byte is rounded up
/// to two, an extension's smallest size).
pub(super) fn encode(h: &Header, sack: Option<&SelectiveAck>, padding: usize, payload: &[u8]) -> Vec<u8> {
    let padding = if padding == 1 { 2 } else { padding };
    let sack_len = sack.map_or(0, |s| 2 + s.mask.len());
    let mut out = Vec::with_capacity(HEADER_LEN + sack_len + padding + payload.len());
    let after_sack = if padding > 0 { EXT_PADDING } else { 0 };
    out.push(h.kind.nibble() << 4 | VERSION);
    out.push(if sack.is_some() { EXT_SACK } else { after_sack });
    out.extend_from_slice(&h.conn_id.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.timestamp_diff.to_be_bytes());
    out.extend_from_slice(&h.wnd_size.to_be_bytes());
    out.extend_from_slice(&h.seq_nr.to_be_bytes());
    out.extend_from_slice(&h.ack_nr.to_be_bytes());
    if let Some(sack) = sack {
        out.push(after_sack);
        // The mask is at most MAX_SACK_BYTES long when built by us; a longer one is cut.
        let mask = &sack.mask[..sack.mask.len().min(MAX_SACK_BYTES)];
        out.push(mask.len() as u8);
        out.extend_from_slice(mask);
    }
    let mut left = padding;
    while left > 0 {
        let mut take = left.min(2 + EXT_MAX);
        if left - take == 1 {
            take -= 1; // leave two bytes, enough for one more extension
        }
        left -= take;
        out.push(if left > 0 { EXT_PADDING } else { 0 });
        out.push((take - 2) as u8);
        out.resize(out.len() + take - 2, 0);
    }
    out.extend_from_slice(payload);
    out
}

/// Whether a datagram's first byte is that of a uTP packet (a known type, version 1), which
/// tells it apart from a bencoded DHT message (which starts with `d`).
pub fn looks_like_utp(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[0] & 0x0f == VERSION && PacketType::from_nibble(bytes[0] >> 4).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: PacketType) -> Header {
        Header {
            kind,
            conn_id: 0x1234,
            timestamp: 0xdead_beef,
            timestamp_diff: 77,
            wnd_size: 1 << 20,
            seq_nr: 65535,
            ack_nr: 3,
        }
    }

    #[test]
    fn round_trips_with_and_without_sack() {
        let p = Packet { header: header(PacketType::Data), sack: None, payload: b"hello" };
        let bytes = p.encode();
        assert_eq!(bytes.len(), 25);
        assert_eq!(bytes[0], 0x01);
        assert_eq!(Packet::decode(&bytes), Ok(p));
        let p = Packet {
            header: header(PacketType::State),
            sack: Some(SelectiveAck { mask: vec![0b101, 0, 0, 0x80] }),
            payload: b"",
        };
        let bytes = p.encode();
        assert_eq!(bytes[0], 0x21);
        assert_eq!(Packet::decode(&bytes), Ok(p.clone()));
        assert_eq!(p.sack.unwrap().received().collect::<Vec<_>>(), [0, 2, 31]);
    }

    #[test]
    fn a_syn_as_libtorrent_sends_it_decodes() {
        // ST_SYN, version 1, no extension, conn id 0x4d2, wnd 1 MiB, seq 0x1f2e, ack 0.
        let bytes = [0x41, 0, 0x04, 0xd2, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x1f, 0x2e, 0, 0];
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.header.kind, PacketType::Syn);
        assert_eq!((p.header.conn_id, p.header.seq_nr, p.header.wnd_size), (0x4d2, 0x1f2e, 1 << 20));
        assert!(looks_like_utp(&bytes));
        assert!(!looks_like_utp(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"));
    }

    #[test]
    fn hostile_datagrams_are_errors() {
        assert_eq!(Packet::decode(&[0x01; 19]), Err(UtpError::Truncated));
        let mut bytes = Packet { header: header(PacketType::Data), sack: None, payload: b"" }.encode();
        bytes[0] = 0x02;
        assert_eq!(Packet::decode(&bytes), Err(UtpError::BadVersion(2)));
        bytes[0] = 0x51;
        assert_eq!(Packet::decode(&bytes), Err(UtpError::BadType(5)));
        bytes[0] = 0x01;
        bytes[1] = 9; // an extension follows, but nothing is there
        assert_eq!(Packet::decode(&bytes), Err(UtpError::Truncated));
        bytes.extend_from_slice(&[0, 200, 1, 2]); // claims 200 bytes, has 2
        assert_eq!(Packet::decode(&bytes), Err(UtpError::Truncated));
    }

    #[test]
    fn padding_reaches_the_size_asked_and_decodes_away() {
        let sack = SelectiveAck { mask: vec![1, 0, 0, 0] };
        for padding in [0, 2, 3, 257, 258, 259, 600] {
            for s in [None, Some(&sack)] {
                let bytes = encode(&header(PacketType::Data), s, padding, b"data");
                let sack_len = s.map_or(0, |s| 2 + s.mask.len());
                assert_eq!(bytes.len(), HEADER_LEN + sack_len + padding + 4, "{padding}");
                let p = Packet::decode(&bytes).unwrap();
                assert_eq!((p.payload, p.sack.as_ref()), (&b"data"[..], s));
            }
        }
        assert_eq!(encode(&header(PacketType::Data), None, 1, b"").len(), HEADER_LEN + 2);
    }

    #[test]
    fn unknown_extensions_are_skipped_and_long_masks_cut() {
        let mut bytes = Packet { header: header(PacketType::Data), sack: None, payload: b"" }.encode();
        bytes[1] = 7;
        bytes.extend_from_slice(&[1, 2, 0xaa, 0xbb]); // ext 7, 2 bytes, then SACK
        bytes.push(0);
        bytes.push(40);
        bytes.extend_from_slice(&[0xff; 40]);
        bytes.extend_from_slice(b"xyz");
        let p = Packet::decode(&bytes).unwrap();
        assert_eq!(p.sack.unwrap().mask.len(), MAX_SACK_BYTES);
        assert_eq!(p.payload, b"xyz");
    }
}
