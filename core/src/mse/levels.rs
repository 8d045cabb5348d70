//! The payload stream methods a side accepts, and the one selected.

/// The methods a side accepts for the payload stream after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Levels {
    /// The payload stream is plaintext (only the handshake is encrypted).
    Plaintext,
    /// The payload stream is RC4-encrypted.
    Rc4,
    /// Either. A responder picks plaintext when the initiator offers both (libtorrent's
    /// default, `prefer_rc4` off: the handshake is obfuscated and the payload costs no cipher),
    /// RC4 when that is all the initiator offers.
    #[default]
    Both,
}

impl Levels {
    /// The `crypto_provide` bits of these levels.
    pub fn bits(self) -> u32 {
        match self {
            Levels::Plaintext => PLAINTEXT_BIT,
            Levels::Rc4 => RC4_BIT,
            Levels::Both => PLAINTEXT_BIT | RC4_BIT,
        }
    }

    /// What a responder selects from a peer's `crypto_provide`: plaintext when both sides
    /// allow it, else RC4 when both allow that.
    pub(super) fn select(self, provided: u32) -> Option<Selected> {
        let common = self.bits() & provided;
        if common & PLAINTEXT_BIT != 0 {
            Some(Selected::Plaintext)
        } else if common & RC4_BIT != 0 {
            Some(Selected::Rc4)
        } else {
            None
        }
    }
}

/// The method the responder selected for the payload stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selected {
    /// Plaintext after the handshake.
    Plaintext,
    /// RC4 after the handshake.
    Rc4,
}

impl Selected {
    /// Its `crypto_select` bit.
    pub(super) fn bit(self) -> u32 {
        match self {
            Selected::Plaintext => PLAINTEXT_BIT,
            Selected::Rc4 => RC4_BIT,
        }
    }
}

/// `crypto_provide`/`crypto_select` bit of a plaintext payload stream.
const PLAINTEXT_BIT: u32 = 0x01;
/// `crypto_provide`/`crypto_select` bit of an RC4 payload stream.
const RC4_BIT: u32 = 0x02;
