//! Message Stream Encryption / Protocol Encryption (MSE/PE, the "Vuze" spec): a Diffie-Hellman
//! exchange and RC4, wrapped around the BitTorrent handshake so that the stream carries no
//! fixed bytes a middlebox could match.
//!
//! [`MseHandshake`] is a sans-IO machine for both roles: fed the peer's bytes, it writes what
//! to send and, once the handshake is done, hands over an [`Established`] stream: the
//! [`Cipher`] of each direction (RC4, or plaintext when that was selected) and the bytes that
//! arrived past the handshake, already decrypted. Its randomness (the private key and the
//! padding) comes in as [`Secrets`]; it never draws any itself.
//!
//! The exchange, A dialling B (S is the shared secret, SKEY the torrent's info-hash):
//!
//! ```text
//! A -> B  Ya, PadA
//! B -> A  Yb, PadB
//! A -> B  HASH('req1', S), HASH('req2', SKEY) ^ HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! B -> A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload stream
//! ```

mod cipher;
mod error;
mod handshake;
mod keys;
mod levels;
#[cfg(test)]
mod tests;

pub use cipher::Cipher;
pub use error::MseError;
pub use handshake::{Established, MseHandshake, MseStep, Secrets, MAX_INITIAL_PAYLOAD, MAX_PAD};
pub use keys::{req2, KEY_LEN, PRIVATE_KEY_LEN};
pub use levels::{Levels, Selected};
