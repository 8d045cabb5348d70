//! BEP 55 hole punching, the relay's side, against hand-driven peers: a rendezvous for a peer
//! we are connected to that speaks `ut_holepunch` gets `connect` to both ends, each with the
//! other's address; any other gets the error BEP 55 names; hostile payloads close the peer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_core::wire::{
    ExtendedHandshake, Handshake, HolepunchError, HolepunchKind, HolepunchMessage, Message, UT_HOLEPUNCH,
};
use shoal_core::{PeerId, TorrentState};

use crate::support::{plain_torrent, raw_messages, RawId, World};

/// The id our hand-driven peers take `ut_holepunch` messages under.
const THEIR_ID: u8 = 9;

/// A hand-driven peer's greeting: handshake, then an extended handshake with its listening
/// port, offering `ut_holepunch` if `holepunch`.
fn greeting(info_hash: shoal_core::InfoHash, who: u8, port: u16, holepunch: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut peer_id = *b"-XX0001-punchpeer000";
    peer_id[19] = who;
    Handshake::new(info_hash, PeerId(peer_id)).encode(&mut out);
    let m = if holepunch { BTreeMap::from([(UT_HOLEPUNCH.to_owned(), THEIR_ID)]) } else { BTreeMap::new() };
    let ext = ExtendedHandshake { m, p: Some(port), ..Default::default() };
    Message::Extended { id: 0, payload: ext.encode() }.encode(&mut out);
    out
}

/// A `ut_holepunch` message under the engine's id.
fn frame(id: u8, kind: HolepunchKind, addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::new();
    Message::Extended { id, payload: HolepunchMessage { kind, addr }.encode() }.encode(&mut out);
    out
}

/// The holepunch messages the engine sent a hand-driven peer.
fn holepunch_received(w: &World, raw: RawId) -> Vec<HolepunchMessage> {
    raw_messages(&w.raws[raw].received)
        .into_iter()
        .filter_map(|m| match m {
            Message::Extended { id: THEIR_ID, payload } => HolepunchMessage::decode(&payload).ok(),
            _ => None,
        })
        .collect()
}

#[test]
fn a_relay_introduces_two_holepunch_peers_and_answers_every_other_rendezvous_with_its_error() {
    let mut tt = plain_torrent(55);
    tt.meta.trackers.clear();
    let ih = tt.meta.info_hash;
    let mut w = World::new(55);
    let relay = w.add_node_with(|c| {
        c.utp = true;
        c.max_peers_per_torrent = 6;
    });
    let own = w.nodes[relay].addr;
    let l = w.leech(relay, &tt);
    w.run_until(Duration::from_secs(5), |w| w.nodes[relay].stats(l).state == TorrentState::Downloading);
    let from = |i: u8| SocketAddr::from(([10, 0, 9, i], 40_000 + u16::from(i)));
    let listens = |i: u8| SocketAddr::from(([10, 0, 9, i], 7000 + u16::from(i)));
    // a and b speak ut_holepunch, c does not.
    let peers: Vec<RawId> = [(1, true), (2, true), (3, false)]
        .into_iter()
        .map(|(i, hp)| {
            let raw = w.raw_connect(relay, from(i));
            w.raw_send(raw, &greeting(ih, i, 7000 + u16::from(i), hp));
            raw
        })
        .collect();
    let (a, b, c) = (peers[0], peers[1], peers[2]);
    w.run_for(Duration::from_millis(50));
    let ours = raw_messages(&w.raws[a].received)
        .into_iter()
        .find_map(|m| match m {
            Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
            _ => None,
        })
        .expect("an extended handshake");
    let id = ours.m[UT_HOLEPUNCH];

    // a asks for b at the address b listens on: each hears of the other's listening address.
    w.raw_send(a, &frame(id, HolepunchKind::Rendezvous, listens(2)));
    w.run_for(Duration::from_millis(50));
    assert_eq!(holepunch_received(&w, a), vec![HolepunchMessage { kind: HolepunchKind::Connect, addr: listens(2) }]);
    assert_eq!(holepunch_received(&w, b), vec![HolepunchMessage { kind: HolepunchKind::Connect, addr: listens(1) }]);

    // Every other rendezvous gets its error, about the address asked for.
    let unknown = SocketAddr::from(([10, 0, 9, 77], 7077));
    let zero = SocketAddr::from(([10, 0, 9, 2], 0));
    let cases = [
        (listens(3), HolepunchError::NoSupport),
        (unknown, HolepunchError::NotConnected),
        (listens(1), HolepunchError::NoSelf),
        (own, HolepunchError::NotConnected),
        (zero, HolepunchError::NoSuchPeer),
    ];
    for (target, _) in cases {
        w.raw_send(a, &frame(id, HolepunchKind::Rendezvous, target));
    }
    w.run_for(Duration::from_millis(50));
    let answers: Vec<_> = holepunch_received(&w, a).into_iter().skip(1).collect();
    let expected: Vec<_> =
        cases.iter().map(|(addr, e)| HolepunchMessage { kind: HolepunchKind::Error(*e), addr: *addr }).collect();
    assert_eq!(answers, expected);
    assert_eq!(holepunch_received(&w, b).len(), 1, "b heard of nothing else");
    assert!(holepunch_received(&w, c).is_empty(), "c speaks no ut_holepunch");

    // Six rendezvous a minute per peer (the torrent's peer limit): the seventh is ignored.
    w.raw_send(b, &frame(id, HolepunchKind::Rendezvous, unknown));
    w.run_for(Duration::from_millis(50));
    assert_eq!(holepunch_received(&w, a).len(), 6, "a's budget is spent");
    w.raw_send(a, &frame(id, HolepunchKind::Rendezvous, unknown));
    w.run_for(Duration::from_millis(50));
    assert_eq!(holepunch_received(&w, a).len(), 6, "a seventh rendezvous within the minute is ignored");
    assert_eq!(holepunch_received(&w, b).len(), 2, "b has its own budget");
    w.run_for(Duration::from_secs(60));
    w.raw_send(a, &frame(id, HolepunchKind::Rendezvous, unknown));
    w.run_for(Duration::from_millis(50));
    assert_eq!(holepunch_received(&w, a).len(), 7, "a new minute, a new budget");

    // A truncated payload is a wire error: the peer is closed.
    let mut bad = Vec::new();
    Message::Extended { id, payload: vec![0, 0, 10] }.encode(&mut bad);
    w.raw_send(c, &bad);
    w.run_for(Duration::from_millis(50));
    assert!(w.raws[c].closed, "a truncated holepunch message closes the peer");
    assert!(!w.raws[a].closed && !w.raws[b].closed);
}

#[test]
fn without_utp_or_with_holepunch_off_the_extension_is_not_offered() {
    let tt = plain_torrent(56);
    for (utp, holepunch) in [(false, true), (true, false)] {
        let mut w = World::new(56);
        let node = w.add_node_with(|c| {
            c.utp = utp;
            c.holepunch = holepunch;
        });
        let l = w.leech(node, &tt);
        w.run_until(Duration::from_secs(5), |w| w.nodes[node].stats(l).state == TorrentState::Downloading);
        let raw = w.raw_connect(node, SocketAddr::from(([10, 0, 9, 1], 40_001)));
        w.raw_send(raw, &greeting(tt.meta.info_hash, 1, 7001, true));
        w.run_for(Duration::from_millis(50));
        let ext = raw_messages(&w.raws[raw].received)
            .into_iter()
            .find_map(|m| match m {
                Message::Extended { id: 0, payload } => ExtendedHandshake::decode(&payload).ok(),
                _ => None,
            })
            .expect("an extended handshake");
        assert!(!ext.m.contains_key(UT_HOLEPUNCH), "utp {utp} holepunch {holepunch}: {:?}", ext.m);
    }
}
