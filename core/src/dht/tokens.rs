//! Announce tokens: proof that an `announce_peer` comes from an address that recently asked.
//!
//! A token is the first [`TOKEN_LEN`] bytes of SHA-1(secret ‖ requester IP). The secret changes
//! every [`ROTATE_EVERY`]; tokens made with the previous secret are still accepted, so a token
//! stays valid for five to ten minutes, as BEP 5 suggests. Only the IP is bound, not the port:
//! NATs may change the source port between the `get_peers` and the `announce_peer`.

use std::net::IpAddr;
use std::time::Duration;

use rand::Rng;
use sha1::{Digest, Sha1};

use crate::types::Instant;

/// How often the secret changes.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Bytes of the digest handed out as a token.
pub const TOKEN_LEN: usize = 8;

/// Issues and checks tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    next_rotation: Instant,
}

impl Tokens {
    /// Fresh secrets drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(rng: &mut R, now: Instant) -> Self {
        Tokens { current: rng.random(), previous: rng.random(), next_rotation: now + ROTATE_EVERY }
    }

    /// When the secret next changes.
    pub fn next_rotation(&self) -> Instant {
        self.next_rotation
    }

    /// Rotates the secret if its time has come.
    pub fn handle_timeout<R: Rng + ?Sized>(&mut self, rng: &mut R, now: Instant) {
        if now >= self.next_rotation {
            self.previous = self.current;
            self.current = rng.random();
            self.next_rotation = now + ROTATE_EVERY;
        }
    }

    /// The token for a requester at `ip`.
    pub fn issue(&self, ip: IpAddr) -> Vec<u8> {
        token(&self.current, ip).to_vec()
    }

    /// Whether `token` was issued to `ip` under the current or the previous secret.
    pub fn verify(&self, ip: IpAddr, presented: &[u8]) -> bool {
        presented == token(&self.current, ip) || presented == token(&self.previous, ip)
    }
}

fn token(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip.to_canonical() {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_bind_the_ip_and_survive_one_rotation() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let now = Instant::ZERO;
        let mut tokens = Tokens::new(&mut rng, now);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = tokens.issue(a);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(tokens.verify(a, &t));
        assert!(!tokens.verify(b, &t));
        assert!(!tokens.verify(a, &t[..4]));
        assert!(!tokens.verify(a, b""));
        // A mapped address is the same requester.
        assert!(tokens.verify("::ffff:10.0.0.1".parse().unwrap(), &t));

        // Not yet time: nothing changes.
        tokens.handle_timeout(&mut rng, now + Duration::from_secs(60));
        assert_eq!(tokens.issue(a), t);
        // After one rotation the old token is still good, after two it is not.
        tokens.handle_timeout(&mut rng, now + ROTATE_EVERY);
        assert_ne!(tokens.issue(a), t);
        assert!(tokens.verify(a, &t));
        tokens.handle_timeout(&mut rng, now + ROTATE_EVERY * 2);
        assert!(!tokens.verify(a, &t));
    }
}
