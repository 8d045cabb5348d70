//! A small bencode encoder/decoder, enough to write hostile torrents by hand and to compute
//! info-hashes independently of the code under test.

use std::collections::BTreeMap;
use std::fmt;

use sha1::{Digest, Sha1};

/// A bencoded value. Dictionaries keep keys sorted, as bencode requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i<n>e`
    Int(i64),
    /// `<len>:<bytes>`
    Bytes(Vec<u8>),
    /// `l...e`
    List(Vec<Value>),
    /// `d...e`
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    /// A byte-string value from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(entries.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }

    /// The bencoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Value::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Value::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The value under `key` if this is a dictionary holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text, if this is a UTF-8 byte string.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

/// Decodes one complete bencoded value (trailing bytes are an error).
pub fn decode(buf: &[u8]) -> Result<Value, String> {
    let mut pos = 0;
    let v = decode_at(buf, &mut pos, 0)?;
    if pos != buf.len() {
        return Err(format!("{} trailing bytes after value", buf.len() - pos));
    }
    Ok(v)
}

const MAX_DEPTH: usize = 64;

fn decode_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    match buf.get(*pos) {
        None => Err("unexpected end of input".into()),
        Some(b'i') => {
            let end = find(buf, *pos + 1, b'e')?;
            let text = std::str::from_utf8(&buf[*pos + 1..end]).map_err(|_| "bad integer")?;
            let n = text.parse().map_err(|_| format!("bad integer {text:?}"))?;
            *pos = end + 1;
            Ok(Value::Int(n))
        }
        Some(b'l') => {
            *pos += 1;
            let mut items = Vec::new();
            while buf.get(*pos) != Some(&b'e') {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            *pos += 1;
            Ok(Value::List(items))
        }
        Some(b'd') => {
            *pos += 1;
            let mut map = BTreeMap::new();
            while buf.get(*pos) != Some(&b'e') {
                let key = decode_bytes(buf, pos)?;
                let val = decode_at(buf, pos, depth + 1)?;
                map.insert(key, val);
            }
            *pos += 1;
            Ok(Value::Dict(map))
        }
        Some(b'0'..=b'9') => Ok(Value::Bytes(decode_bytes(buf, pos)?)),
        Some(c) => Err(format!("unexpected byte {c:#04x} at {}", *pos)),
    }
}

fn decode_bytes(buf: &[u8], pos: &mut usize) -> Result<Vec<u8>, String> {
    let colon = find(buf, *pos, b':')?;
    let text = std::str::from_utf8(&buf[*pos..colon]).map_err(|_| "bad length")?;
    let len: usize = text.parse().map_err(|_| format!("bad length {text:?}"))?;
    let start = colon + 1;
    let end = start.checked_add(len).filter(|&e| e <= buf.len()).ok_or("string runs past end of input")?;
    *pos = end;
    Ok(buf[start..end].to_vec())
}

fn find(buf: &[u8], from: usize, byte: u8) -> Result<usize, String> {
    buf.get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == byte))
        .map(|i| from + i)
        .ok_or_else(|| format!("missing {:?}", byte as char))
}

/// A v1 info-hash: SHA-1 of the bencoded `info` dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Computes the info-hash of a .torrent file's bytes, hashing the `info` value exactly as
    /// it appears in the file (not re-encoded).
    pub fn of_torrent(torrent: &[u8]) -> Result<InfoHash, String> {
        if torrent.first() != Some(&b'd') {
            return Err("torrent is not a dictionary".into());
        }
        let mut pos = 1;
        while torrent.get(pos) != Some(&b'e') {
            let key = decode_bytes(torrent, &mut pos)?;
            let start = pos;
            decode_at(torrent, &mut pos, 1)?;
            if key == b"info" {
                return Ok(InfoHash(Sha1::digest(&torrent[start..pos]).into()));
            }
        }
        Err("torrent has no info dictionary".into())
    }

    /// Reads a .torrent file and computes its info-hash; panics on error.
    pub fn of_file(path: &std::path::Path) -> InfoHash {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read torrent {}: {e}", path.display()));
        InfoHash::of_torrent(&bytes).unwrap_or_else(|e| panic!("bad torrent {}: {e}", path.display()))
    }

    /// 40 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Percent-encoded for a tracker query string.
    pub fn url_encoded(&self) -> String {
        self.0.iter().map(|b| format!("%{b:02X}")).collect()
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.hex())
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = Value::dict([
            ("a", Value::Int(-3)),
            ("b", Value::List(vec![Value::str("x"), Value::Int(0)])),
            ("c", Value::dict([("z", Value::str(""))])),
        ]);
        let enc = v.encode();
        assert_eq!(enc, b"d1:ai-3e1:bl1:xi0ee1:cd1:z0:ee");
        assert_eq!(decode(&enc).unwrap(), v);
    }

    #[test]
    fn hostile_input_is_an_error() {
        for bad in [&b""[..], b"i12", b"5:abc", b"l", b"d1:a", b"x", b"99999999999999999999:"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn info_hash_uses_raw_bytes() {
        let t = b"d8:announce3:url4:infod4:name1:xee";
        let expect: [u8; 20] = Sha1::digest(b"d4:name1:xe").into();
        assert_eq!(InfoHash::of_torrent(t).unwrap().0, expect);
    }
}
