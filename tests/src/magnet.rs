//! Magnet links (BEP 9, BEP 53 `so`) for the tests, written here by hand rather than by
//! shoal-core, whose parser they exercise.

use std::net::SocketAddr;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::bencode::InfoHash;

/// How the link spells the info-hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashForm {
    /// 40 hex digits (what most clients write).
    Hex,
    /// 32 base32 characters (RFC 4648, upper case, as older clients wrote).
    Base32,
}

/// A magnet link under construction: `Link::new(hash).tracker(url).to_string()`.
#[derive(Clone, Debug)]
pub struct Link {
    hash: InfoHash,
    form: HashForm,
    name: Option<String>,
    trackers: Vec<String>,
    peers: Vec<SocketAddr>,
    select_only: Option<String>,
}

impl Link {
    /// A link with only `xt=urn:btih:<hex>`.
    pub fn new(hash: InfoHash) -> Link {
        Link { hash, form: HashForm::Hex, name: None, trackers: Vec::new(), peers: Vec::new(), select_only: None }
    }

    /// Spells the info-hash in `form`.
    pub fn hash_form(mut self, form: HashForm) -> Link {
        self.form = form;
        self
    }

    /// Adds `dn`.
    pub fn name(mut self, name: &str) -> Link {
        self.name = Some(name.to_string());
        self
    }

    /// Adds a `tr`.
    pub fn tracker(mut self, url: &str) -> Link {
        self.trackers.push(url.to_string());
        self
    }

    /// Adds an `x.pe`.
    pub fn peer(mut self, addr: SocketAddr) -> Link {
        self.peers.push(addr);
        self
    }

    /// Sets `so` (BEP 53) to the file indices given, written as they come (`0,2,4-6`).
    pub fn select_only(mut self, spec: &str) -> Link {
        self.select_only = Some(spec.to_string());
        self
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hash = match self.form {
            HashForm::Hex => self.hash.hex(),
            HashForm::Base32 => base32(&self.hash.0),
        };
        write!(f, "magnet:?xt=urn:btih:{hash}")?;
        let escape = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        if let Some(name) = &self.name {
            write!(f, "&dn={}", escape(name))?;
        }
        for t in &self.trackers {
            write!(f, "&tr={}", escape(t))?;
        }
        for p in &self.peers {
            write!(f, "&x.pe={p}")?;
        }
        if let Some(so) = &self.select_only {
            write!(f, "&so={so}")?;
        }
        Ok(())
    }
}

/// RFC 4648 base32 without padding (20 bytes give exactly 32 characters).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(&[0xff; 20]), "7".repeat(32));
    }

    #[test]
    fn links_escape_their_values() {
        let link = Link::new(InfoHash([0xab; 20]))
            .name("a b")
            .tracker("http://127.0.0.1:1/announce")
            .peer("127.0.0.1:2".parse().unwrap())
            .select_only("0,2-3")
            .to_string();
        assert_eq!(
            link,
            format!(
                "magnet:?xt=urn:btih:{}&dn=a%20b&tr=http%3A%2F%2F127%2E0%2E0%2E1%3A1%2Fannounce\
                 &x.pe=127.0.0.1:2&so=0,2-3",
                "ab".repeat(20)
            )
        );
    }
}
