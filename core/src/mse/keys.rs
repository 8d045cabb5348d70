//! The Diffie-Hellman group and the hashes the spec derives from the shared secret.

use num_bigint::BigUint;
use sha1::{Digest, Sha1};

use super::error::MseError;
use crate::types::InfoHash;

/// Bytes of a public key (and of the shared secret): the 768-bit group's size.
pub const KEY_LEN: usize = 96;
/// Bytes of a private key (160 bits, as the spec recommends).
pub const PRIVATE_KEY_LEN: usize = 20;

/// The spec's prime P (the 768-bit MODP group of RFC 2409); the generator is 2.
const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34, 0xC4, 0xC6, 0x62,
    0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74, 0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13,
    0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD, 0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30,
    0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37, 0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76,
    0x62, 0x5E, 0x7E, 0xC6, 0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05,
    0x63,
];

/// A number as the spec sends it: big-endian, left-padded with zeros to 96 bytes.
fn to_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let be = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    // Every number here is reduced mod P, so it fits.
    out[KEY_LEN - be.len()..].copy_from_slice(&be);
    out
}

/// Our public key `2^private mod P`.
pub(super) fn public_key(private: &[u8; PRIVATE_KEY_LEN]) -> [u8; KEY_LEN] {
    let p = BigUint::from_bytes_be(&PRIME);
    to_bytes(&BigUint::from(2u32).modpow(&BigUint::from_bytes_be(private), &p))
}

/// The shared secret `their^private mod P`; refuses keys that make it trivial (0, 1, P-1).
pub(super) fn shared_secret(
    private: &[u8; PRIVATE_KEY_LEN],
    theirs: &[u8; KEY_LEN],
) -> Result<[u8; KEY_LEN], MseError> {
    let p = BigUint::from_bytes_be(&PRIME);
    let y = BigUint::from_bytes_be(theirs);
    let one = BigUint::from(1u32);
    if y <= one || y >= &p - &one {
        return Err(MseError::BadPublicKey);
    }
    Ok(to_bytes(&y.modpow(&BigUint::from_bytes_be(private), &p)))
}

/// SHA-1 of the parts, one after the other.
pub(super) fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req2', SKEY)`: how an initiator names the torrent without sending its info-hash.
pub fn req2(skey: &InfoHash) -> [u8; 20] {
    hash(&[b"req2", &skey.0])
}

/// `HASH('req1', S)`: the responder finds the end of PadA by it.
pub(super) fn req1(s: &[u8; KEY_LEN]) -> [u8; 20] {
    hash(&[b"req1", s])
}

/// `HASH('req3', S)`, which hides `HASH('req2', SKEY)` on the wire.
pub(super) fn req3(s: &[u8; KEY_LEN]) -> [u8; 20] {
    hash(&[b"req3", s])
}

/// The RC4 key of what the initiator sends (`HASH('keyA', S, SKEY)`).
pub(super) fn key_a(s: &[u8; KEY_LEN], skey: &InfoHash) -> [u8; 20] {
    hash(&[b"keyA", s, &skey.0])
}

/// The RC4 key of what the responder sends (`HASH('keyB', S, SKEY)`).
pub(super) fn key_b(s: &[u8; KEY_LEN], skey: &InfoHash) -> [u8; 20] {
    hash(&[b"keyB", s, &skey.0])
}
