//! NAT-PMP (RFC 6886): the external-address and port-mapping requests we send to the gateway's
//! UDP port 5351, and the strict parsing of its answers.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::protocol::Protocol;

/// The gateway's NAT-PMP (and PCP) UDP port.
pub const PORT: u16 = 5351;
/// The protocol version we speak (RFC 6886 §3).
const VERSION: u8 = 0;
/// Opcodes (RFC 6886 §3.2, §3.3); an answer's opcode is the request's plus 128.
const OP_EXTERNAL: u8 = 0;
const OP_MAP_UDP: u8 = 1;
const OP_MAP_TCP: u8 = 2;
const OP_ANSWER: u8 = 128;

/// What we ask the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Its external IPv4 address.
    ExternalAddress,
    /// Map `internal_port` (to `external_port`, a suggestion; 0 for any) for `lifetime`; a
    /// lifetime of zero with external port zero deletes the mapping (§3.4).
    Map {
        /// TCP or UDP.
        protocol: Protocol,
        /// Our port.
        internal_port: u16,
        /// The external port we would like.
        external_port: u16,
        /// Seconds the mapping should live.
        lifetime: u32,
    },
}

impl Request {
    /// The datagram (2 bytes for the address request, 12 for a mapping).
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Request::ExternalAddress => vec![VERSION, OP_EXTERNAL],
            Request::Map { protocol, internal_port, external_port, lifetime } => {
                let mut d = Vec::with_capacity(12);
                d.extend_from_slice(&[VERSION, map_opcode(protocol), 0, 0]);
                d.extend_from_slice(&internal_port.to_be_bytes());
                d.extend_from_slice(&external_port.to_be_bytes());
                d.extend_from_slice(&lifetime.to_be_bytes());
                d
            }
        }
    }
}

fn map_opcode(p: Protocol) -> u8 {
    match p {
        Protocol::Udp => OP_MAP_UDP,
        Protocol::Tcp => OP_MAP_TCP,
    }
}

/// A gateway's result code (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResultCode {
    /// 1: the gateway speaks another version.
    #[error("unsupported version")]
    UnsupportedVersion,
    /// 2: mapping is switched off on the gateway, or refused for us.
    #[error("not authorized or refused")]
    NotAuthorized,
    /// 3: the gateway has no external address (its uplink is down).
    #[error("network failure")]
    NetworkFailure,
    /// 4: the gateway cannot create more mappings.
    #[error("out of resources")]
    OutOfResources,
    /// 5: the gateway does not know the opcode.
    #[error("unsupported opcode")]
    UnsupportedOpcode,
    /// Any other number.
    #[error("result code {0}")]
    Other(u16),
}

impl ResultCode {
    fn from_u16(c: u16) -> Option<ResultCode> {
        Some(match c {
            0 => return None,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            c => ResultCode::Other(c),
        })
    }
}

/// What an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The external address.
    ExternalAddress {
        /// Seconds since the gateway's port-mapping table was (re)initialised.
        epoch: u32,
        /// The address (may be a lie: see [`super::usable_external_ip`]).
        ip: Ipv4Addr,
    },
    /// A mapping was made (or deleted, with lifetime 0).
    Mapped {
        /// Seconds since the gateway's table was (re)initialised.
        epoch: u32,
        /// TCP or UDP.
        protocol: Protocol,
        /// Our port, as in the request.
        internal_port: u16,
        /// The port the gateway opened, perhaps not the one asked for.
        external_port: u16,
        /// How long it lives.
        lifetime: Duration,
    },
    /// The gateway refused the request (`request` is the opcode-derived kind).
    Refused {
        /// Seconds since the gateway's table was (re)initialised.
        epoch: u32,
        /// What the refused request was for: `None` for the external address.
        mapping: Option<(Protocol, u16)>,
        /// Why.
        code: ResultCode,
    },
}

/// Why a datagram is not a NAT-PMP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not version 0.
    #[error("version {0}")]
    Version(u8),
    /// An opcode that no request of ours has (below 128, or unknown).
    #[error("opcode {0}")]
    Opcode(u8),
    /// Shorter than the answer's fixed size (or much longer: the sizes are fixed).
    #[error("{0} bytes")]
    Length(usize),
}

/// Answers are fixed-size; a datagram longer than this is not one (RFC 6886 answers are 12 or
/// 16 bytes; a little slack for gateways that pad).
const MAX_ANSWER: usize = 64;

/// Reads a datagram from the gateway strictly: hostile or broken gateways send anything.
pub fn parse(d: &[u8]) -> Result<Answer, ParseError> {
    if d.len() < 8 || d.len() > MAX_ANSWER {
        return Err(ParseError::Length(d.len()));
    }
    if d[0] != VERSION {
        return Err(ParseError::Version(d[0]));
    }
    let op = d[1];
    let code = u16::from_be_bytes([d[2], d[3]]);
    let epoch = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    let protocol = match op {
        x if x == OP_ANSWER + OP_EXTERNAL => None,
        x if x == OP_ANSWER + OP_MAP_UDP => Some(Protocol::Udp),
        x if x == OP_ANSWER + OP_MAP_TCP => Some(Protocol::Tcp),
        _ => return Err(ParseError::Opcode(op)),
    };
    match protocol {
        None => {
            if let Some(code) = ResultCode::from_u16(code) {
                return Ok(Answer::Refused { epoch, mapping: None, code });
            }
            if d.len() < 12 {
                return Err(ParseError::Length(d.len()));
            }
            Ok(Answer::ExternalAddress { epoch, ip: Ipv4Addr::new(d[8], d[9], d[10], d[11]) })
        }
        Some(protocol) => {
            // A refusal still carries the internal port (§3.5: the request's fields are echoed).
            if d.len() < 16 {
                return Err(ParseError::Length(d.len()));
            }
            let internal_port = u16::from_be_bytes([d[8], d[9]]);
            if let Some(code) = ResultCode::from_u16(code) {
                return Ok(Answer::Refused { epoch, mapping: Some((protocol, internal_port)), code });
            }
            Ok(Answer::Mapped {
                epoch,
                protocol,
                internal_port,
                external_port: u16::from_be_bytes([d[10], d[11]]),
                lifetime: Duration::from_secs(u32::from_be_bytes([d[12], d[13], d[14], d[15]]).into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_rfc_bytes() {
        assert_eq!(Request::ExternalAddress.encode(), [0, 0]);
        let m = Request::Map { protocol: Protocol::Tcp, internal_port: 6881, external_port: 6881, lifetime: 7200 };
        assert_eq!(m.encode(), [0, 2, 0, 0, 0x1a, 0xe1, 0x1a, 0xe1, 0, 0, 0x1c, 0x20]);
        let del = Request::Map { protocol: Protocol::Udp, internal_port: 6881, external_port: 0, lifetime: 0 };
        assert_eq!(del.encode(), [0, 1, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn answers_as_miniupnpd_sends_them() {
        // RFC 6886 §3.2/§3.3 layouts: external address 203.0.113.7 at epoch 42, then a TCP mapping.
        let ext = [0, 128, 0, 0, 0, 0, 0, 42, 203, 0, 113, 7];
        assert_eq!(parse(&ext), Ok(Answer::ExternalAddress { epoch: 42, ip: Ipv4Addr::new(203, 0, 113, 7) }));
        let map = [0, 130, 0, 0, 0, 0, 0, 43, 0x1a, 0xe1, 0x1a, 0xe2, 0, 0, 0x0e, 0x10];
        assert_eq!(
            parse(&map),
            Ok(Answer::Mapped {
                epoch: 43,
                protocol: Protocol::Tcp,
                internal_port: 6881,
                external_port: 6882,
                lifetime: Duration::from_secs(3600)
            })
        );
        let refused = [0, 129, 0, 2, 0, 0, 0, 44, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(&refused),
            Ok(Answer::Refused { epoch: 44, mapping: Some((Protocol::Udp, 6881)), code: ResultCode::NotAuthorized })
        );
        let no_net = [0, 128, 0, 3, 0, 0, 0, 1];
        assert_eq!(parse(&no_net), Ok(Answer::Refused { epoch: 1, mapping: None, code: ResultCode::NetworkFailure }));
    }

    #[test]
    fn real_miniupnpd_answers() {
        // Captured from Debian bookworm's miniupnpd 2.3.1 (external address 11.77.0.1): the
        // address, a TCP 6881 mapping for 7200 s, and its deletion.
        let hex = |s: &str| {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect::<Vec<u8>>()
        };
        assert_eq!(
            parse(&hex("00800000000000090b4d0001")),
            Ok(Answer::ExternalAddress { epoch: 9, ip: Ipv4Addr::new(11, 77, 0, 1) })
        );
        let made = Answer::Mapped {
            epoch: 16,
            protocol: Protocol::Tcp,
            internal_port: 6881,
            external_port: 6881,
            lifetime: Duration::from_secs(7200),
        };
        assert_eq!(parse(&hex("00820000000000101ae11ae100001c20")), Ok(made));
        let gone = Answer::Mapped {
            epoch: 16,
            protocol: Protocol::Tcp,
            internal_port: 6881,
            external_port: 0,
            lifetime: Duration::ZERO,
        };
        assert_eq!(parse(&hex("00820000000000101ae1000000000000")), Ok(gone));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        assert_eq!(parse(&[]), Err(ParseError::Length(0)));
        assert_eq!(parse(&[0, 128, 0, 0, 0, 0, 0, 1]), Err(ParseError::Length(8)), "address missing");
        assert_eq!(parse(&[0, 130, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1]), Err(ParseError::Length(12)));
        assert_eq!(parse(&[2, 128, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), Err(ParseError::Version(2)), "a PCP answer");
        assert_eq!(parse(&[0, 2, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), Err(ParseError::Opcode(2)), "a request echoed");
        assert_eq!(parse(&[0; 1500]), Err(ParseError::Length(1500)));
        for n in 0..=MAX_ANSWER {
            for fill in [0u8, 0x80, 0xff] {
                let mut d = vec![fill; n];
                if n > 1 {
                    d[0] = 0;
                    d[1] = 129;
                }
                let _ = parse(&d);
            }
        }
    }
}
