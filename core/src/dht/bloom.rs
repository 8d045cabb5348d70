//! The BEP 33 bloom filter: 256 bytes, two bits per IP address taken from its SHA-1.
//!
//! Nodes answer a `get_peers` with `scrape=1` with two such filters (`BFsd` for seeds, `BFpe`
//! for peers) over the IPs they store for the torrent. OR-ing the filters of several nodes gives
//! the filter of the union, and the share of zero bits estimates how many IPs went in. Every
//! implementation must set exactly the bits the BEP's pseudocode sets, or counts from different
//! clients could not be merged: the BEP's own test vector checks that (see the tests).

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Size of a filter on the wire, in bytes (BEP 33: `m = 256 * 8` bits).
pub const BLOOM_BYTES: usize = 256;
/// Bits in a filter.
const M: usize = BLOOM_BYTES * 8;
/// Bits set per inserted IP (BEP 33: `k = 2`).
const K: f64 = 2.0;

/// A BEP 33 scrape filter (boxed: KRPC answers carry two, and most answers none).
#[derive(Clone, PartialEq, Eq)]
pub struct ScrapeBloom(Box<[u8; BLOOM_BYTES]>);

impl Default for ScrapeBloom {
    fn default() -> Self {
        ScrapeBloom(Box::new([0; BLOOM_BYTES]))
    }
}

impl std::fmt::Debug for ScrapeBloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScrapeBloom(~{:.1})", self.estimate())
    }
}

impl ScrapeBloom {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// A filter received from a node; `None` unless it is exactly [`BLOOM_BYTES`] long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; BLOOM_BYTES]>::try_from(bytes).ok().map(|b| ScrapeBloom(Box::new(b)))
    }

    /// The 256 bytes to send.
    pub fn as_bytes(&self) -> &[u8; BLOOM_BYTES] {
        &self.0
    }

    /// Adds an IP address (only the address: BEP 33 forbids ports). IPv4-mapped IPv6
    /// addresses count as the IPv4 address they carry, so one host is one entry.
    pub fn insert(&mut self, ip: IpAddr) {
        for index in Self::indices(ip) {
            self.0[index / 8] |= 1 << (index % 8);
        }
    }

    /// Whether `ip` may be in the filter (false positives are possible, false negatives not).
    pub fn contains(&self, ip: IpAddr) -> bool {
        Self::indices(ip).iter().all(|&index| self.0[index / 8] & (1 << (index % 8)) != 0)
    }

    /// Adds every entry of `other` (the filter of the union of both sets).
    pub fn union(&mut self, other: &ScrapeBloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// BEP 33's estimate of how many distinct IPs went in: `ln(c / m) / (k * ln(1 - 1/m))`
    /// with `c` the zero bits. The BEP's pseudocode caps `c` at `m - 1`, which makes an empty
    /// filter read 0.5 and leaves a full one infinite; `c` is kept at least 1 instead, so an
    /// empty filter reads 0 and a full one a finite (and meaningless, about 7,600) figure.
    /// Every other filter gives the BEP's figure.
    pub fn estimate(&self) -> f64 {
        let ones: usize = self.0.iter().map(|b| b.count_ones() as usize).sum();
        let zeros = (M - ones).max(1) as f64;
        let m = M as f64;
        (zeros / m).ln() / (K * (1.0 - 1.0 / m).ln())
    }

    /// The two bit positions of `ip`: the first four bytes of its SHA-1, as two little-endian
    /// 16-bit numbers, each modulo `m`.
    fn indices(ip: IpAddr) -> [usize; 2] {
        let hash: [u8; 20] = match ip.to_canonical() {
            IpAddr::V4(v4) => Sha1::digest(v4.octets()).into(),
            IpAddr::V6(v6) => Sha1::digest(v6.octets()).into(),
        };
        let first = usize::from(hash[0]) | usize::from(hash[1]) << 8;
        let second = usize::from(hash[2]) | usize::from(hash[3]) << 8;
        [first % M, second % M]
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// BEP 33's test vector: 192.0.2.0–255 and 2001:db8::–2001:db8::3e7 give these bytes.
    const BEP33_VECTOR: &str = "\
        F6C3F5EA A07FFD91 BDE89F77 7F26FB2B FF37BDB8 FB2BBAA2 FD3DDDE7 BACFFF75 EE7CCBAE \
        FE5EEDB1 FBFAFF67 F6ABFF5E 43DDBCA3 FD9B9FFD F4FFD3E9 DFF12D1B DF59DB53 DBE9FA5B \
        7FF3B8FD FCDE1AFB 8BEDD7BE 2F3EE71E BBBFE93B CDEEFE14 8246C2BC 5DBFF7E7 EFDCF24F \
        D8DC7ADF FD8FFFDF DDFFF7A4 BBEEDF5C B95CE81F C7FCFF1F F4FFFFDF E5F7FDCB B7FD79B3 \
        FA1FC77B FE07FFF9 05B7B7FF C7FEFEFF E0B8370B B0CD3F5B 7F2BD93F EB4386CF DD6F7FD5 \
        BFAF2E9E BFFFFEEC D67ADBF7 C67F17EF D5D75EBA 6FFEBA7F FF47A91E B1BFBB53 E8ABFB57 \
        62ABE8FF 237279BF EFBFEEF5 FFC5FEBF DFE5ADFF ADFEE1FB 737FFFFB FD9F6AEF FEEE76B6 \
        FD8F72EF";

    fn vector_bytes() -> Vec<u8> {
        let hex: String = BEP33_VECTOR.split_whitespace().collect();
        data_encoding::HEXUPPER.decode(hex.as_bytes()).expect("the BEP's hex")
    }

    fn bep33_filter() -> ScrapeBloom {
        let mut bloom = ScrapeBloom::new();
        for last in 0..=255u8 {
            bloom.insert(Ipv4Addr::new(192, 0, 2, last).into());
        }
        for n in 0..=0x3e7u16 {
            bloom.insert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n).into());
        }
        bloom
    }

    #[test]
    fn the_bep33_test_vector() {
        let bloom = bep33_filter();
        assert_eq!(bloom.as_bytes().to_vec(), vector_bytes());
        // "For the 1256 inserted values the calculated estimate should be 1224.9308."
        assert!((bloom.estimate() - 1224.9308).abs() < 1e-3, "{}", bloom.estimate());
        assert_eq!(ScrapeBloom::from_bytes(&vector_bytes()), Some(bloom));
    }

    #[test]
    fn union_counts_shared_entries_once() {
        let mut a = ScrapeBloom::new();
        let mut b = ScrapeBloom::new();
        for n in 0..40u8 {
            a.insert(Ipv4Addr::new(10, 0, 0, n).into());
        }
        for n in 20..60u8 {
            b.insert(Ipv4Addr::new(10, 0, 0, n).into());
        }
        a.union(&b);
        // 60 distinct IPs; a 2048-bit filter is near exact at this size.
        assert!((a.estimate() - 60.0).abs() < 3.0, "{}", a.estimate());
        assert!(a.contains(Ipv4Addr::new(10, 0, 0, 59).into()));
        // Ports are not part of an entry, and a mapped address is its IPv4 one.
        let mut c = ScrapeBloom::new();
        c.insert(Ipv4Addr::new(10, 0, 0, 1).into());
        c.insert(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().into());
        assert!((c.estimate() - 1.0).abs() < 0.01, "{}", c.estimate());
    }

    #[test]
    fn wrong_sizes_are_refused_and_full_filters_stay_finite() {
        assert_eq!(ScrapeBloom::from_bytes(&[0xff; 255]), None);
        assert_eq!(ScrapeBloom::from_bytes(&[0xff; 257]), None);
        assert_eq!(ScrapeBloom::from_bytes(&[]), None);
        let empty = ScrapeBloom::from_bytes(&[0; 256]).unwrap();
        assert!(empty.is_empty() && empty.estimate() == 0.0);
        let full = ScrapeBloom::from_bytes(&[0xff; 256]).unwrap();
        assert!(full.estimate().is_finite() && full.estimate() > 7000.0, "{}", full.estimate());
    }
}
