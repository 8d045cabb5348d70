//! Message Stream Encryption between engines: forced on both ends, enabled against a peer
//! without it (the plaintext retry, after a close or a silent handshake), the combinations
//! that must not connect, and what PEX's encryption flag changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::mse::Levels;
use shoal_core::wire::{ExtendedHandshake, Handshake, Message, PexMessage, PEX_ENCRYPTION, UT_PEX};
use shoal_core::{CloseReason, Config, Encryption, Event, InfoHash, PeerId, TorrentState};

use crate::support::{assert_complete, handshake, plain_torrent, raw_messages, NodeId, RawId, World};

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

/// Whether the first bytes a dialled hand-driven peer got were a plaintext BitTorrent
/// handshake (else they were an MSE key).
fn got_plaintext(w: &World, raw: RawId) -> bool {
    w.raws[raw].received.starts_with(b"\x13BitTorrent protocol")
}

/// Runs until the engine has dialled `addr` for the `n`-th time (counting from 0) and its
/// first bytes arrived; that connection.
fn nth_dial(w: &mut World, addr: SocketAddr, n: usize, limit: Duration) -> RawId {
    w.run_until(limit, |w| w.raws.dialled_at(addr).get(n).is_some_and(|r| !w.raws[*r].received.is_empty()));
    w.raws.dialled_at(addr)[n]
}

/// A dialled hand-driven peer answers in plaintext: handshake, then a message (a peer that
/// says nothing after its handshake is closed as silent).
fn answer(w: &mut World, raw: RawId, info_hash: InfoHash) {
    let mut out = handshake(info_hash);
    Message::NotInterested.encode(&mut out);
    w.raw_send(raw, &out);
}

/// Issue #17: an encrypted dial to a peer that took the connection and never answered our
/// key (as one without encryption does while it waits for a plaintext handshake) was closed
/// at the handshake timeout and never retried. With encryption enabled it is dialled again,
/// in plaintext, at once.
#[test]
fn an_encrypted_dial_never_answered_is_retried_in_plaintext_after_the_handshake_timeout() {
    let mut tt = plain_torrent(40);
    tt.meta.trackers.clear();
    let mut w = World::new(40);
    let node = w.add_node_with(enabled);
    let l = w.leech(node, &tt);
    let a = SocketAddr::from(([10, 0, 9, 3], 6000));
    w.raw_listen(a);
    w.command(node, |e, now| e.add_peers(l, &[a], now)).expect("add_peers");
    let first = nth_dial(&mut w, a, 0, Duration::from_secs(5));
    let connected = w.now;
    assert!(!got_plaintext(&w, first), "the first dial was not encrypted");

    let retry = nth_dial(&mut w, a, 1, Duration::from_secs(60));
    assert!(w.raws[first].closed, "the silent encrypted dial is still open");
    assert!(got_plaintext(&w, retry), "the retry was not in plaintext");
    let timeout = w.nodes[node].engine.config().handshake_timeout;
    let waited = w.now - connected;
    assert!(waited >= timeout && waited <= timeout + Duration::from_secs(2), "retried after {waited:?}");
    assert!(w.nodes[node].saw(|e| matches!(e, Event::PeerClosed { reason: CloseReason::HandshakeTimeout, .. })));

    answer(&mut w, retry, tt.meta.info_hash);
    w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).peers == 1);
}

/// A ut_pex message (under the engine's extension id `id`) adding `added` with their flags.
fn pex_with_flags(id: u8, added: &[(SocketAddr, u8)]) -> Vec<u8> {
    let msg = PexMessage { added: added.to_vec(), dropped: vec![] };
    let mut out = Vec::new();
    Message::Extended { id, payload: msg.encode() }.encode(&mut out);
    out
}

/// The ut_pex extension id an engine gave in its extended handshake to a hand-driven peer.
fn engine_ut_pex(w: &World, raw: RawId) -> u8 {
    let ext = raw_messages(&w.raws[raw].received).into_iter().find_map(|m| match m {
        Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
        _ => None,
    });
    ext.expect("an extended handshake").m[UT_PEX]
}

/// A peer whose encrypted dial failed is dialled in plaintext, until PEX says it prefers
/// encryption (flag 0x01): then it is dialled encrypted again. When that fails too and the
/// plaintext retry works, PEX naming it with the flag again (each minute, as PEX does) is not
/// believed any more: otherwise every reconnection would start with a failed encrypted dial.
#[test]
fn the_pex_encryption_flag_reenables_encrypted_dials_once() {
    let mut tt = plain_torrent(41);
    tt.meta.trackers.clear();
    let ih = tt.meta.info_hash;
    let mut w = World::new(41);
    let node = w.add_node_with(enabled);
    let l = w.leech(node, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).state == TorrentState::Downloading);
    let a = SocketAddr::from(([10, 0, 9, 4], 6000));
    w.raw_listen(a);
    // R tells us about A; a PEX message is taken at most every 45 s from one peer.
    let r = w.raw_connect(node, SocketAddr::from(([10, 0, 9, 5], 40000)));
    w.raw_send(r, &greeting(ih, 5, 7005, None));
    w.run_for(Duration::from_millis(50));
    let ut_pex = engine_ut_pex(&w, r);
    let pex = |flags: u8| pex_with_flags(ut_pex, &[(a, flags)]);
    w.raw_send(r, &pex(0));
    let pex_gap = Duration::from_secs(46);
    let limit = Duration::from_secs(120);

    // Encrypted (encryption is enabled), hung up on, retried in plaintext.
    let d1 = nth_dial(&mut w, a, 0, limit);
    assert!(!got_plaintext(&w, d1), "the first dial was not encrypted");
    w.raw_close(d1);
    let d2 = nth_dial(&mut w, a, 1, limit);
    assert!(got_plaintext(&w, d2), "the retry was not in plaintext");
    answer(&mut w, d2, ih);
    w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).peers == 2);
    w.raw_close(d2);

    // PEX says A prefers encryption before it is dialled again: encrypted again.
    w.run_for(pex_gap);
    w.raw_send(r, &pex(PEX_ENCRYPTION));
    let d3 = nth_dial(&mut w, a, 2, limit);
    assert!(!got_plaintext(&w, d3), "the PEX flag did not bring encrypted dials back");
    w.raw_close(d3);
    let d4 = nth_dial(&mut w, a, 3, limit);
    assert!(got_plaintext(&w, d4), "the retry was not in plaintext");
    answer(&mut w, d4, ih);

    // PEX keeps flagging A: no dial while it is connected, and none encrypted after it left.
    for _ in 0..3 {
        w.run_for(pex_gap);
        w.raw_send(d4, &[0, 0, 0, 0]);
        w.raw_send(r, &pex(PEX_ENCRYPTION));
    }
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.raws.dialled_at(a).len(), 4, "A was dialled while connected");
    assert!(!w.raws[d4].closed, "the plaintext connection was closed");
    w.raw_close(d4);
    w.run_for(pex_gap);
    w.raw_send(r, &pex(PEX_ENCRYPTION));
    let d5 = nth_dial(&mut w, a, 4, limit);
    assert!(got_plaintext(&w, d5), "the flag was believed again: each PEX message costs a failed encrypted dial");
}
