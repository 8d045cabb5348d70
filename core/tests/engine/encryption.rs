//! Message Stream Encryption between engines: forced on both ends, enabled against a peer
//! without it (the plaintext retry), and the combinations that must not connect.

use std::time::Duration;

use shoal_core::mse::Levels;
use shoal_core::{CloseReason, Config, Encryption, Event};

use crate::support::{assert_complete, plain_torrent, NodeId, World};

/// A seeder and a leecher with these settings; returns the world after the leecher had `limit`
/// to finish, whether it did, and the two nodes.
fn transfer(
    seed: u64,
    seeder: impl FnOnce(&mut Config),
    leecher: impl FnOnce(&mut Config),
    limit: u64,
) -> (World, bool, [NodeId; 2]) {
    let tt = plain_torrent(seed);
    let mut w = World::new(seed);
    w.tap = true;
    let s = w.add_node_with(seeder);
    let l = w.add_node_with(leecher);
    w.seed(s, &tt);
    let t = w.leech(l, &tt);
    let deadline = w.now + Duration::from_secs(limit);
    while w.now < deadline && !w.nodes[l].finished(t) {
        w.step();
    }
    let done = w.nodes[l].finished(t);
    if done {
        assert_complete(&w, l, t, &tt);
    }
    (w, done, [s, l])
}

fn forced(c: &mut Config) {
    c.encryption = Encryption::Forced;
}

fn enabled(c: &mut Config) {
    c.encryption = Encryption::Enabled;
}

fn disabled(c: &mut Config) {
    c.encryption = Encryption::Disabled;
}

/// How many messages the tap could read: none of an RC4 stream.
fn readable(w: &World) -> usize {
    w.wire_log.len()
}

#[test]
fn forced_on_both_ends_downloads_over_rc4() {
    let (w, done, _) = transfer(31, forced, forced, 120);
    assert!(done, "{}", w.summary());
    assert_eq!(readable(&w), 0, "a plaintext message crossed the wire");
}

#[test]
fn enabled_on_both_ends_prefers_rc4() {
    let (w, done, _) = transfer(32, enabled, enabled, 120);
    assert!(done, "{}", w.summary());
    assert_eq!(readable(&w), 0, "a plaintext message crossed the wire");
}

#[test]
fn plaintext_payload_after_an_encrypted_handshake() {
    let plain_payload = |c: &mut Config| {
        c.encryption = Encryption::Forced;
        c.encryption_levels = Levels::Plaintext;
    };
    let (w, done, _) = transfer(33, forced, plain_payload, 120);
    assert!(done, "{}", w.summary());
}

#[test]
fn enabled_dialler_retries_a_peer_without_encryption_in_plaintext() {
    let (w, done, [_, l]) = transfer(34, disabled, enabled, 120);
    assert!(done, "{}", w.summary());
    // The first, encrypted, dial was refused by the seeder's plaintext decoder.
    let leecher = &w.nodes[l];
    assert!(
        leecher.saw(|e| matches!(e, Event::PeerClosed { reason: CloseReason::PeerClosed, .. })),
        "the encrypted dial was not closed first"
    );
    assert!(readable(&w) > 0, "the retry was not in plaintext");
}

#[test]
fn enabled_accepts_a_plaintext_dialler() {
    let (w, done, _) = transfer(35, enabled, disabled, 120);
    assert!(done, "{}", w.summary());
}

#[test]
fn forced_never_talks_to_a_peer_without_encryption() {
    // Forced dials encrypted only: the seeder without encryption hangs up, no plaintext retry.
    let (w, done, _) = transfer(36, disabled, forced, 60);
    assert!(!done);
    assert_eq!(readable(&w), 0, "plaintext BitTorrent was sent");
    // Forced takes no plaintext handshake.
    let (w, done, [_, l]) = transfer(37, forced, disabled, 60);
    assert!(!done);
    assert!(w.wire_log.iter().all(|e| e.from.0 == l), "the forced seeder sent plaintext");
}
