//! The BEP 10 extended handshake: the bencoded dictionary sent as extended message 0.

use std::collections::BTreeMap;

use bt_bencode::{ByteString, Value};
use serde::Deserialize;

use super::error::WireError;
use crate::bencode::{self, BencodeError};

/// The extended message id of the extended handshake.
pub const EXTENDED_HANDSHAKE_ID: u8 = 0;

/// Deepest list/dict nesting accepted; the handshake itself needs two levels.
///
/// bt_bencode parses recursively with no depth limit, so a payload of nested lists could
/// overflow the stack; payloads pass [`bencode::check`] with this limit before being parsed.
const MAX_NESTING: usize = 32;

/// The extended handshake dictionary; every field but `m` is optional.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ExtendedHandshake {
    /// Extension name to the id the sender wants to receive it under; 0 means disabled.
    pub m: BTreeMap<String, u8>,
    /// Client name and version.
    pub v: Option<String>,
    /// The sender's listen port.
    pub p: Option<u16>,
    /// How many outstanding requests the sender accepts.
    pub reqq: Option<u32>,
    /// BEP 9: size of the info dictionary in bytes.
    pub metadata_size: Option<u64>,
    /// Our address as the sender sees it (4 or 16 bytes).
    pub yourip: Option<Vec<u8>>,
    /// The sender's IPv6 address (16 bytes).
    pub ipv6: Option<Vec<u8>>,
    /// The sender's IPv4 address (4 bytes).
    pub ipv4: Option<Vec<u8>>,
    /// BEP 21: the sender only uploads (a seed, or a partial seed that wants nothing more).
    pub upload_only: Option<bool>,
    /// MSE/PE: the sender prefers encrypted connections (`e: 1`).
    pub e: Option<bool>,
}

impl ExtendedHandshake {
    /// The bencoded dictionary, to be sent as `Message::Extended { id: 0, payload }`.
    pub fn encode(&self) -> Vec<u8> {
        let mut dict: BTreeMap<ByteString, Value> = BTreeMap::new();
        let m =
            self.m.iter().map(|(name, id)| (ByteString::from(name.as_str()), Value::from(u64::from(*id)))).collect();
        dict.insert("m".into(), Value::Dict(m));
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                dict.insert(key.into(), value);
            }
        };
        let bytes = |b: &Option<Vec<u8>>| b.as_ref().map(|b| Value::ByteStr(b.as_slice().into()));
        put("v", self.v.as_deref().map(|v| Value::ByteStr(v.into())));
        put("p", self.p.map(|p| Value::from(u64::from(p))));
        put("reqq", self.reqq.map(|r| Value::from(u64::from(r))));
        put("metadata_size", self.metadata_size.map(Value::from));
        put("yourip", bytes(&self.yourip));
        put("ipv6", bytes(&self.ipv6));
        put("ipv4", bytes(&self.ipv4));
        put("upload_only", self.upload_only.map(|u| Value::from(u64::from(u))));
        put("e", self.e.map(|e| Value::from(u64::from(e))));
        // Serialising an in-memory Value to a Vec has no failure mode (no I/O, no non-string
        // keys: the dict's keys are byte strings by type).
        bt_bencode::to_vec(&Value::Dict(dict)).expect("a bencode Value always serialises")
    }

    /// Parses a received extended handshake, ignoring unknown keys and ill-typed values.
    ///
    /// Only a payload that is not a bencoded dictionary is an error; bytes after the
    /// dictionary are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        let payload = match bencode::check(payload, MAX_NESTING) {
            Ok(()) => payload,
            // Bytes after the dictionary are ignored.
            Err(BencodeError::TrailingData { offset }) => &payload[..offset],
            Err(BencodeError::TooDeep { .. }) => {
                return Err(WireError::BadExtendedHandshake(format!(
                    "lists or dictionaries nested deeper than {MAX_NESTING}"
                )))
            }
            Err(e) => return Err(WireError::BadExtendedHandshake(e.to_string())),
        };
        let mut de = bt_bencode::Deserializer::from_slice(payload);
        let value = Value::deserialize(&mut de).map_err(|e| WireError::BadExtendedHandshake(e.to_string()))?;
        let Value::Dict(dict) = value else {
            return Err(WireError::BadExtendedHandshake("not a dictionary".into()));
        };
        let get = |key: &str| dict.get(key.as_bytes());
        let int = |key: &str| get(key).and_then(Value::as_u64);
        let bytes = |key: &str| get(key).and_then(Value::as_byte_str).map(|b| b.to_vec());

        let mut m = BTreeMap::new();
        if let Some(entries) = get("m").and_then(Value::as_dict) {
            for (name, id) in entries {
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let Some(id) = id.as_u64().and_then(|id| u8::try_from(id).ok()) else {
                    continue;
                };
                m.insert(name.to_owned(), id);
            }
        }
        Ok(ExtendedHandshake {
            m,
            v: get("v").and_then(Value::as_byte_str).map(|v| String::from_utf8_lossy(v).into_owned()),
            p: int("p").and_then(|p| u16::try_from(p).ok()),
            reqq: int("reqq").and_then(|r| u32::try_from(r).ok()),
            metadata_size: int("metadata_size"),
            yourip: bytes("yourip"),
            ipv6: bytes("ipv6"),
            ipv4: bytes("ipv4"),
            upload_only: int("upload_only").map(|u| u != 0),
            e: int("e").map(|e| e != 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ExtendedHandshake {
        ExtendedHandshake {
            m: BTreeMap::from([("ut_metadata".to_owned(), 2), ("ut_pex".to_owned(), 1)]),
            v: Some("Shoal 0.1".to_owned()),
            p: Some(6881),
            reqq: Some(500),
            metadata_size: Some(31235),
            yourip: Some(vec![127, 0, 0, 1]),
            ipv6: None,
            ipv4: Some(vec![10, 0, 0, 2]),
            upload_only: Some(true),
            e: Some(true),
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(ExtendedHandshake::decode(&sample().encode()), Ok(sample()));
        let empty = ExtendedHandshake::default();
        assert_eq!(empty.encode(), b"d1:mdee");
        assert_eq!(ExtendedHandshake::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn encodes_sorted_keys_and_omits_absent_fields() {
        let h = ExtendedHandshake {
            m: BTreeMap::from([("ut_metadata".to_owned(), 3)]),
            p: Some(6881),
            v: Some("x".to_owned()),
            ..Default::default()
        };
        assert_eq!(h.encode(), b"d1:md11:ut_metadatai3ee1:pi6881e1:v1:xe");
    }

    #[test]
    fn decode_tolerates_unknown_keys_and_ill_typed_values() {
        let payload = b"d8:completei1e1:md6:ut_pexi300e5:bogus3:abc11:ut_metadatai3e4:negsi-1e7:lt_donti0ee\
                        1:pi70000e4:reqqi-5e1:vi42e11:upload_onlyi1ee";
        let h = ExtendedHandshake::decode(payload).unwrap();
        assert_eq!(h.m, BTreeMap::from([("ut_metadata".to_owned(), 3), ("lt_dont".to_owned(), 0)]));
        assert_eq!((h.p, h.reqq, h.v), (None, None, None));
        assert_eq!(h.upload_only, Some(true));
        // An `m` that is not a dictionary is ignored too (and unsorted keys are tolerated).
        assert_eq!(ExtendedHandshake::decode(b"d1:mi1e1:ai2ee"), Ok(ExtendedHandshake::default()));
    }

    #[test]
    fn decode_keeps_non_utf8_client_names_lossily_and_ignores_trailing_bytes() {
        let h = ExtendedHandshake::decode(b"d1:v2:\xffAe trailing").unwrap();
        assert_eq!(h.v.as_deref(), Some("\u{fffd}A"));
    }

    #[test]
    fn decode_refuses_what_is_not_a_dictionary() {
        for bad in [&b""[..], b"i5e", b"l1:me", b"d1:m", b"xyz"] {
            assert!(
                matches!(ExtendedHandshake::decode(bad), Err(WireError::BadExtendedHandshake(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn decode_refuses_huge_string_lengths_without_panicking() {
        // Found by the `extended_handshake` fuzz target: a byte-string length near `usize::MAX`
        // passed the old nesting scan and overflowed bt_bencode's offset arithmetic (a panic).
        for payload in
            [&b"d1:v18446744073709551615:e"[..], b"d18446744073709551615:", b"d1:mdee1:x18446744073709551615:"]
        {
            let got = ExtendedHandshake::decode(payload);
            if payload.starts_with(b"d1:mdee") {
                assert_eq!(got, Ok(ExtendedHandshake::default()), "trailing bytes are ignored");
            } else {
                assert!(matches!(got, Err(WireError::BadExtendedHandshake(_))), "{payload:?}: {got:?}");
            }
        }
    }

    #[test]
    fn decode_refuses_deep_nesting_without_overflowing_the_stack() {
        let mut payload = b"d1:x".to_vec();
        payload.extend(std::iter::repeat_n(b'l', 200_000));
        payload.extend(std::iter::repeat_n(b'e', 200_000));
        payload.push(b'e');
        assert!(matches!(ExtendedHandshake::decode(&payload), Err(WireError::BadExtendedHandshake(_))));
        // Modest nesting under unknown keys is fine.
        let ok = b"d1:md1:ai1ee1:xllllleeeeee";
        assert_eq!(ExtendedHandshake::decode(ok).unwrap().m.len(), 1);
    }
}
