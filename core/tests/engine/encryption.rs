//! Message Stream Encryption between engines: forced on both ends, enabled against a peer
//! without it (the plaintext retry), and the combinations that must not connect.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::mse::Levels;
use shoal_core::wire::{ExtendedHandshake, Handshake, Message, PexMessage, PEX_ENCRYPTION, UT_PEX};
use shoal_core::{CloseReason, Config, Encryption, Event, InfoHash, PeerId, TorrentState};

use crate::support::{assert_complete, plain_torrent, raw_messages, NodeId, RawId, World};

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

/// Forced, with an RC4 payload stream only.
fn forced_rc4(c: &mut Config) {
    c.encryption = Encryption::Forced;
    c.encryption_levels = Levels::Rc4;
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
fn forced_rc4_on_both_ends_downloads_over_rc4() {
    let (w, done, _) = transfer(31, forced_rc4, forced_rc4, 120);
    assert!(done, "{}", w.summary());
    assert_eq!(readable(&w), 0, "a plaintext message crossed the wire");
}

#[test]
fn enabled_on_both_ends_downloads() {
    let (w, done, _) = transfer(32, enabled, enabled, 120);
    assert!(done, "{}", w.summary());
}

#[test]
fn rc4_is_used_when_one_end_allows_nothing_else() {
    for (n, (a, b)) in [(38, (forced_rc4 as fn(&mut Config), enabled as fn(&mut Config))), (39, (enabled, forced_rc4))]
    {
        let (w, done, _) = transfer(n, a, b, 120);
        assert!(done, "{}", w.summary());
        assert_eq!(readable(&w), 0, "a plaintext message crossed the wire");
    }
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

/// A hand-driven peer's plaintext greeting: handshake, then an extended handshake offering
/// ut_pex (as id 7), saying where it listens and, with `e`, that it prefers encryption.
fn greeting(info_hash: InfoHash, who: u8, port: u16, e: Option<bool>) -> Vec<u8> {
    let mut peer_id = *b"-XX0001-encpeer00000";
    peer_id[19] = who;
    let mut out = Vec::new();
    Handshake::new(info_hash, PeerId(peer_id)).encode(&mut out);
    let ext = ExtendedHandshake { m: BTreeMap::from([(UT_PEX.to_owned(), 7)]), p: Some(port), e, ..Default::default() };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut out);
    out
}

#[test]
fn we_say_e_and_pass_a_peers_preference_on_in_pex() {
    let mut tt = plain_torrent(38);
    tt.meta.trackers.clear();
    let ih = tt.meta.info_hash;
    let mut w = World::new(38);
    let node = w.add_node_with(enabled);
    let l = w.leech(node, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).state == TorrentState::Downloading);
    // Plaintext peers (an enabled engine takes them): r1 prefers encryption, r2 does not say.
    let (a1, a2) = (SocketAddr::from(([10, 0, 9, 1], 5000)), SocketAddr::from(([10, 0, 9, 2], 5000)));
    let r1 = w.raw_connect(node, a1);
    w.raw_send(r1, &greeting(ih, 1, 7001, Some(true)));
    let r2 = w.raw_connect(node, a2);
    w.raw_send(r2, &greeting(ih, 2, 7002, None));
    let connected = w.now;
    w.run_for(Duration::from_millis(50));
    let ours = raw_messages(&w.raws[r2].received).into_iter().find_map(|m| match m {
        Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
        _ => None,
    });
    assert_eq!(ours.expect("an extended handshake").e, Some(true), "we did not say e: 1");

    // About a minute later each hears of the other, r1 flagged as preferring encryption.
    w.run_until(Duration::from_secs(70), |w| w.now >= connected + Duration::from_secs(62));
    let heard = |raw: RawId| -> Vec<(SocketAddr, u8)> {
        raw_messages(&w.raws[raw].received)
            .into_iter()
            .filter_map(|m| match m {
                Message::Extended { id: 7, payload } => PexMessage::decode(&payload, 100, 100).ok(),
                _ => None,
            })
            .flat_map(|p| p.added)
            .collect()
    };
    let r1_at = SocketAddr::new(a1.ip(), 7001);
    let r2_at = SocketAddr::new(a2.ip(), 7002);
    assert!(heard(r2).iter().any(|(a, f)| *a == r1_at && f & PEX_ENCRYPTION != 0), "{:?}", heard(r2));
    assert!(heard(r1).iter().any(|(a, f)| *a == r2_at && f & PEX_ENCRYPTION == 0), "{:?}", heard(r1));
}
