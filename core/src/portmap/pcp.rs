//! PCP (RFC 6887), version 2 of NAT-PMP: the MAP request we send to the gateway's UDP port
//! 5351, and the strict parsing of its answers (a NAT-PMP gateway's "unsupported version"
//! among them, which sends us back to NAT-PMP).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::protocol::Protocol;

pub use super::natpmp::PORT;

/// The protocol version we speak (RFC 6887 §7).
pub const VERSION: u8 = 2;
/// The largest PCP message (RFC 6887 §7): longer answers are refused unread.
pub const MAX_MESSAGE: usize = 1100;
/// The MAP opcode (RFC 6887 §19.2); the R bit (0x80) marks an answer.
const OP_MAP: u8 = 1;
const R_BIT: u8 = 0x80;
/// The common header (§7.1, §7.2) and the MAP opcode fields after it (§11.1).
const HEADER: usize = 24;
const MAP_FIELDS: usize = 36;
/// IANA protocol numbers, as MAP carries them.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
/// NAT-PMP's answer to a version it does not speak (RFC 6886 §3.5), and PCP's (RFC 6887 §7.4).
const UNSUPP_VERSION: u8 = 1;

/// The mapping nonce (RFC 6887 §11.1): random, chosen by us, echoed in every answer about the
/// mapping, and required by the gateway to renew or delete it.
pub type Nonce = [u8; 12];

/// A MAP request: forward `internal_port` on the gateway for `lifetime` seconds (0 deletes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRequest {
    /// The mapping's nonce.
    pub nonce: Nonce,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Our port.
    pub internal_port: u16,
    /// The external port we would like (0: any).
    pub suggested_port: u16,
    /// Seconds the mapping should live; 0 deletes it (§15).
    pub lifetime: u32,
    /// Our address as the gateway sees it (§8.1: it answers ADDRESS_MISMATCH otherwise).
    pub client: Ipv4Addr,
}

impl MapRequest {
    /// The 60-byte datagram (§7.1 header, §11.1 MAP fields; no options).
    pub fn encode(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(HEADER + MAP_FIELDS);
        d.extend_from_slice(&[VERSION, OP_MAP, 0, 0]);
        d.extend_from_slice(&self.lifetime.to_be_bytes());
        d.extend_from_slice(&self.client.to_ipv6_mapped().octets());
        d.extend_from_slice(&self.nonce);
        d.extend_from_slice(&[protocol_number(self.protocol), 0, 0, 0]);
        d.extend_from_slice(&self.internal_port.to_be_bytes());
        d.extend_from_slice(&self.suggested_port.to_be_bytes());
        // No external address suggested: the IPv4-mapped zero address asks for an IPv4 one (§11.1).
        d.extend_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
        d
    }
}

fn protocol_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

/// A gateway's result code (RFC 6887 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResultCode {
    /// 0: done.
    #[error("success")]
    Success,
    /// 2: mapping is switched off on the gateway, or refused for us.
    #[error("not authorized")]
    NotAuthorized,
    /// 3: the gateway could not read our request.
    #[error("malformed request")]
    MalformedRequest,
    /// 4: the gateway does not know MAP.
    #[error("unsupported opcode")]
    UnsupportedOpcode,
    /// 7: the gateway has no external address (its uplink is down).
    #[error("network failure")]
    NetworkFailure,
    /// 8: the gateway cannot create more mappings now.
    #[error("out of resources")]
    NoResources,
    /// 9: the gateway does not map this protocol.
    #[error("unsupported protocol")]
    UnsupportedProtocol,
    /// 10: we hold as many mappings as the gateway lets one client hold.
    #[error("user quota exceeded")]
    UserExceededQuota,
    /// 11: the suggested external address or port cannot be given (and no other either).
    #[error("cannot provide an external address or port")]
    CannotProvideExternal,
    /// 12: the client address in our request is not the one the gateway sees.
    #[error("address mismatch (the gateway sees another address of ours)")]
    AddressMismatch,
    /// Any other number (options errors 5, 6, 13 among them: we send no options).
    #[error("result code {0}")]
    Other(u8),
}

impl ResultCode {
    fn from_u8(c: u8) -> ResultCode {
        match c {
            0 => ResultCode::Success,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::MalformedRequest,
            4 => ResultCode::UnsupportedOpcode,
            7 => ResultCode::NetworkFailure,
            8 => ResultCode::NoResources,
            9 => ResultCode::UnsupportedProtocol,
            10 => ResultCode::UserExceededQuota,
            11 => ResultCode::CannotProvideExternal,
            12 => ResultCode::AddressMismatch,
            c => ResultCode::Other(c),
        }
    }
}

/// An answer from the gateway's port 5351 to a MAP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The gateway speaks only an older version: NAT-PMP's "unsupported version" (RFC 6886
    /// §3.5) or PCP's UNSUPP_VERSION. The client falls back to NAT-PMP (RFC 6887 §9).
    UnsupportedVersion,
    /// An answer about one mapping (success or not).
    Map(MapAnswer),
    /// An error too short to say which mapping it is about (§7.2 lets a server truncate).
    Error {
        /// The gateway's epoch (seconds since it started keeping mappings).
        epoch: u32,
        /// What went wrong.
        code: ResultCode,
    },
}

/// The fields of a MAP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapAnswer {
    /// The gateway's epoch.
    pub epoch: u32,
    /// Success or why not.
    pub code: ResultCode,
    /// On success the granted lifetime (0 after a deletion); on an error how long the error
    /// is expected to last.
    pub lifetime: Duration,
    /// The request's nonce, echoed.
    pub nonce: Nonce,
    /// TCP or UDP (`None`: a protocol number we never ask for).
    pub protocol: Option<Protocol>,
    /// Our port.
    pub internal_port: u16,
    /// The port open on the gateway.
    pub external_port: u16,
    /// The gateway's external address (`None`: an IPv6 one, which we do not map for).
    pub external_ip: Option<Ipv4Addr>,
}

/// Why a datagram is not an answer we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than its layout, longer than [`MAX_MESSAGE`], or not a multiple of 4 (§7).
    #[error("bad length {0}")]
    Length(usize),
    /// A version other than 2 (or a NAT-PMP answer that is not "unsupported version").
    #[error("version {0}")]
    Version(u8),
    /// A request, or an opcode we never send.
    #[error("opcode {0}")]
    Opcode(u8),
}

/// Reads an answer from the gateway's port 5351.
pub fn parse(d: &[u8]) -> Result<Answer, ParseError> {
    if d.len() > MAX_MESSAGE || d.len() < 4 {
        return Err(ParseError::Length(d.len()));
    }
    if d[0] == 0 {
        // NAT-PMP (RFC 6886 §3.5): version 0, result 1 in 2 bytes. The opcode is not checked:
        // miniupnpd echoes ours + 128, the RFC's figure shows 0.
        let code = u16::from_be_bytes([d[2], d[3]]);
        return if code == u16::from(UNSUPP_VERSION) {
            Ok(Answer::UnsupportedVersion)
        } else {
            Err(ParseError::Version(0))
        };
    }
    if d[1] & R_BIT != 0 && d[3] == UNSUPP_VERSION {
        // §9: a server of another version answers with its own version number and this code.
        return Ok(Answer::UnsupportedVersion);
    }
    if d[0] != VERSION {
        return Err(ParseError::Version(d[0]));
    }
    if d[1] != R_BIT | OP_MAP {
        return Err(ParseError::Opcode(d[1]));
    }
    if d.len() < HEADER || !d.len().is_multiple_of(4) {
        return Err(ParseError::Length(d.len()));
    }
    let code = ResultCode::from_u8(d[3]);
    let be32 = |at: usize| u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let epoch = be32(8);
    if d.len() < HEADER + MAP_FIELDS {
        return match code {
            ResultCode::Success => Err(ParseError::Length(d.len())),
            code => Ok(Answer::Error { epoch, code }),
        };
    }
    let m = &d[HEADER..HEADER + MAP_FIELDS];
    let mut nonce = [0; 12];
    nonce.copy_from_slice(&m[..12]);
    let protocol = match m[12] {
        PROTO_TCP => Some(Protocol::Tcp),
        PROTO_UDP => Some(Protocol::Udp),
        _ => None,
    };
    let mut ip = [0; 16];
    ip.copy_from_slice(&m[20..36]);
    // Options may follow (§7.3); we send none and read none.
    Ok(Answer::Map(MapAnswer {
        epoch,
        code,
        lifetime: Duration::from_secs(be32(4).into()),
        nonce,
        protocol,
        internal_port: u16::from_be_bytes([m[16], m[17]]),
        external_port: u16::from_be_bytes([m[18], m[19]]),
        external_ip: Ipv6Addr::from(ip).to_ipv4_mapped(),
    }))
}

#[cfg(test)]
#[path = "pcp_tests.rs"]
mod tests;
