//! The payload stream's cipher, one per direction.

use rc4::consts::U20;
use rc4::{KeyInit, Rc4, StreamCipher};

/// Bytes of RC4 keystream dropped before use (its first bytes leak the key).
const DISCARD: usize = 1024;

/// One direction of an MSE stream: RC4 from its key, or nothing (plaintext).
pub struct Cipher(Option<Box<Rc4<U20>>>);

impl Cipher {
    /// A cipher that leaves bytes as they are.
    pub fn plaintext() -> Self {
        Cipher(None)
    }

    /// RC4 keyed with `key`, its first 1024 bytes of keystream dropped.
    pub(super) fn rc4(key: &[u8; 20]) -> Self {
        let mut rc4 = Rc4::<U20>::new(key.into());
        rc4.apply_keystream(&mut [0u8; DISCARD]);
        Cipher(Some(Box::new(rc4)))
    }

    /// Whether bytes pass unchanged.
    pub fn is_plaintext(&self) -> bool {
        self.0.is_none()
    }

    /// Encrypts or decrypts `buf` in place (RC4 is its own inverse), continuing the stream.
    pub fn apply(&mut self, buf: &mut [u8]) {
        if let Some(rc4) = &mut self.0 {
            rc4.apply_keystream(buf);
        }
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stream state stays out of logs.
        f.write_str(if self.is_plaintext() { "Cipher(plaintext)" } else { "Cipher(rc4)" })
    }
}
