//! Tests of the whole [`Dht`] machine fed with hand-made datagrams.

use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use super::krpc::{Body, Message, Method, Query, Response, Want};
use super::*;

fn ms(m: u64) -> Instant {
    Instant::from_micros(m * 1000)
}

fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

fn config() -> DhtConfig {
    DhtConfig { bootstrap: vec![], ..DhtConfig::default() }
}

fn dht() -> Dht {
    Dht::new(config(), id(0x11), 7, ms(0))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Drains outputs: the decoded datagrams sent, and everything else.
fn drain(d: &mut Dht) -> (Vec<(SocketAddr, Message)>, Vec<DhtOutput>) {
    let mut sent = Vec::new();
    let mut other = Vec::new();
    while let Some(out) = d.poll_output() {
        match out {
            DhtOutput::Send { to, data } => sent.push((to, Message::decode(&data).expect("we send valid KRPC"))),
            o => other.push(o),
        }
    }
    (sent, other)
}

fn query(tid: &[u8], from: NodeId, method: Method) -> Vec<u8> {
    Message {
        tid: tid.to_vec(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id: from, want: Want::default(), method }),
    }
    .encode()
}

fn response(tid: &[u8], r: Response) -> Vec<u8> {
    Message { tid: tid.to_vec(), version: None, ip: None, read_only: false, body: Body::Response(r) }.encode()
}

/// The one answer (response or error) `d` sent, asserting there was exactly one. Queries
/// (such as the ping that probes an unknown querier) are left out.
fn only_reply(d: &mut Dht) -> (SocketAddr, Message) {
    let (sent, _) = drain(d);
    let mut replies: Vec<_> = sent.into_iter().filter(|(_, m)| !matches!(m.body, Body::Query(_))).collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies.remove(0)
}

/// The one datagram `d` sent, asserting there was exactly one.
fn only_sent(d: &mut Dht) -> (SocketAddr, Message) {
    let (mut sent, _) = drain(d);
    assert_eq!(sent.len(), 1, "{sent:?}");
    sent.remove(0)
}

/// Puts `info` straight into the routing table, as if it had answered a query.
fn learn(d: &mut Dht, info: NodeInfo, now: Instant) {
    let family = Family::of(&info.addr);
    d.tables[family.index()].insert(info, now);
}

#[test]
fn answers_ping_and_find_node_with_our_id_and_the_observed_address() {
    let mut d = dht();
    let asker = addr("10.0.0.2:6881");
    d.handle_datagram(asker, &query(b"pp", id(2), Method::Ping), ms(1));
    let (sent, _) = drain(&mut d);
    let (to, msg) = sent[0].clone();
    // An unknown querier is probed with a ping of our own: it enters the table if it answers.
    assert!(
        matches!(&sent[1], (a, Message { body: Body::Query(Query { method: Method::Ping, .. }), .. }) if *a == asker)
    );
    assert_eq!(to, asker);
    assert_eq!(msg.tid, b"pp");
    assert_eq!(msg.ip, Some(asker), "BEP 42: tell the querier its address");
    assert_eq!(msg.body, Body::Response(Response { id: id(0x11), ..Default::default() }));

    let near = NodeInfo { id: id(0x30), addr: addr("10.0.0.30:1") };
    let far = NodeInfo { id: id(0xf0), addr: addr("10.0.0.40:1") };
    let v6 = NodeInfo { id: id(0x31), addr: addr("[2001:db8::31]:1") };
    for n in [near, far, v6] {
        learn(&mut d, n, ms(1));
    }
    d.handle_datagram(asker, &query(b"fn", id(2), Method::FindNode { target: id(0x32) }), ms(2));
    let (_, msg) = only_reply(&mut d);
    let Body::Response(r) = msg.body else { panic!("not a response") };
    assert_eq!(r.nodes, vec![near, far], "closest first, own family only");
    assert!(r.nodes6.is_empty());

    // BEP 32: a querier may ask for both families.
    let both = Message {
        tid: b"f6".to_vec(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query {
            id: id(2),
            want: Want { v4: true, v6: true },
            method: Method::FindNode { target: id(0x32) },
        }),
    };
    d.handle_datagram(asker, &both.encode(), ms(3));
    let (_, msg) = only_reply(&mut d);
    let Body::Response(r) = msg.body else { panic!("not a response") };
    assert_eq!((r.nodes.len(), r.nodes6), (2, vec![v6]));
}

#[test]
fn errors_for_unknown_methods_and_bad_arguments() {
    let mut d = dht();
    let asker = addr("10.0.0.2:6881");
    d.handle_datagram(asker, &query(b"uu", id(2), Method::Unknown(b"vote".to_vec())), ms(1));
    let (_, msg) = only_reply(&mut d);
    assert_eq!(msg.tid, b"uu");
    assert!(matches!(msg.body, Body::Error { code: krpc::ERROR_METHOD_UNKNOWN, .. }));

    d.handle_datagram(asker, b"d1:ad2:id3:abce1:q4:ping1:t2:bb1:y1:qe", ms(2));
    let (_, msg) = only_reply(&mut d);
    assert_eq!(msg.tid, b"bb");
    assert!(matches!(msg.body, Body::Error { code: krpc::ERROR_PROTOCOL, .. }));

    // Garbage and stray answers get no reply at all.
    d.handle_datagram(asker, b"hello", ms(3));
    d.handle_datagram(asker, &response(b"zz", Response { id: id(2), ..Default::default() }), ms(3));
    assert!(drain(&mut d).0.is_empty());
}

#[test]
fn announce_needs_the_token_handed_out_to_that_ip() {
    let mut d = dht();
    let hash = InfoHash([0x42; 20]);
    let announcer = addr("10.0.0.2:40000");
    d.handle_datagram(announcer, &query(b"g1", id(2), Method::GetPeers { info_hash: hash, scrape: false }), ms(1));
    let (_, msg) = only_reply(&mut d);
    let Body::Response(r) = msg.body else { panic!("not a response") };
    let token = r.token.expect("get_peers answers carry a token");
    assert!(r.values.is_empty());

    let announce = |port, implied_port, token: &[u8]| {
        query(
            b"a1",
            id(2),
            Method::AnnouncePeer {
                info_hash: hash,
                port: Some(port),
                implied_port,
                token: token.to_vec(),
                seed: false,
            },
        )
    };
    // Wrong token, and the right token from another IP: refused with 203.
    d.handle_datagram(announcer, &announce(6881, false, b"nonsense"), ms(2));
    assert!(matches!(only_reply(&mut d).1.body, Body::Error { code: krpc::ERROR_PROTOCOL, .. }));
    d.handle_datagram(addr("10.0.0.3:40000"), &announce(6881, false, &token), ms(2));
    assert!(matches!(only_reply(&mut d).1.body, Body::Error { code: krpc::ERROR_PROTOCOL, .. }));
    assert_eq!(d.stored_peers(), 0);

    // Right token: stored with the given port; another with implied_port uses the source port.
    d.handle_datagram(announcer, &announce(6881, false, &token), ms(3));
    assert!(matches!(only_reply(&mut d).1.body, Body::Response(_)));
    d.handle_datagram(announcer, &announce(1, true, &token), ms(3));
    assert!(matches!(only_reply(&mut d).1.body, Body::Response(_)));

    // Someone else now gets both as values, a v6 asker gets none (other family).
    d.handle_datagram(
        addr("10.0.0.9:1"),
        &query(b"g2", id(9), Method::GetPeers { info_hash: hash, scrape: false }),
        ms(4),
    );
    let Body::Response(r) = only_reply(&mut d).1.body else { panic!("not a response") };
    let mut values = r.values;
    values.sort();
    assert_eq!(values, vec![addr("10.0.0.2:6881"), addr("10.0.0.2:40000")]);
    d.handle_datagram(
        addr("[2001:db8::9]:1"),
        &query(b"g3", id(9), Method::GetPeers { info_hash: hash, scrape: false }),
        ms(4),
    );
    let Body::Response(r) = only_reply(&mut d).1.body else { panic!("not a response") };
    assert!(r.values.is_empty());

    // Ten minutes later the token has rotated out twice.
    d.handle_timeout(ms(5 * 60_000));
    d.handle_timeout(ms(10 * 60_000));
    drain(&mut d);
    d.handle_datagram(announcer, &announce(6881, false, &token), ms(10 * 60_000 + 1));
    assert!(matches!(only_reply(&mut d).1.body, Body::Error { code: krpc::ERROR_PROTOCOL, .. }));
}

#[test]
fn floods_from_one_ip_are_dropped() {
    let mut d = Dht::new(DhtConfig { max_incoming_per_ip_per_sec: 5, ..config() }, id(0x11), 1, ms(0));
    for i in 0..100u16 {
        d.handle_datagram(addr("10.0.0.2:1"), &query(&i.to_be_bytes(), id(2), Method::Ping), ms(1));
    }
    let answered = drain(&mut d).0.iter().filter(|(_, m)| matches!(m.body, Body::Response(_))).count();
    assert_eq!(answered, 10, "burst of twice the per-second rate");
    // Another IP is not affected, and the first recovers with time.
    d.handle_datagram(addr("10.0.0.3:1"), &query(b"x", id(3), Method::Ping), ms(1));
    d.handle_datagram(addr("10.0.0.2:1"), &query(b"y", id(2), Method::Ping), ms(1000));
    let replies: Vec<SocketAddr> =
        drain(&mut d).0.into_iter().filter(|(_, m)| matches!(m.body, Body::Response(_))).map(|x| x.0).collect();
    assert_eq!(replies, vec![addr("10.0.0.3:1"), addr("10.0.0.2:1")]);
}

#[test]
fn bootstrap_asks_for_names_then_looks_up_our_id_from_the_routers() {
    let mut d = Dht::new(DhtConfig::default(), id(0x11), 1, ms(0));
    d.bootstrap(ms(0));
    let (sent, other) = drain(&mut d);
    assert!(sent.is_empty());
    let hosts: Vec<String> = other
        .iter()
        .filter_map(|o| match o {
            DhtOutput::Resolve { host, port: 6881 } => Some(host.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(hosts, ["router.bittorrent.com", "dht.transmissionbt.com", "router.utorrent.com"]);
    // Nobody resolved anything: asked again 30 s later.
    d.handle_timeout(ms(30_000));
    assert_eq!(drain(&mut d).1.len(), 3);

    let router = addr("192.0.2.1:6881");
    d.add_bootstrap(router, ms(30_100));
    let (to, msg) = only_sent(&mut d);
    assert_eq!(to, router);
    let Body::Query(q) = msg.body else { panic!("not a query") };
    assert_eq!(q.method, Method::FindNode { target: id(0x11) });
    assert_eq!(q.want, Want { v4: true, v6: true });

    // An answer from elsewhere with the same transaction id is ignored.
    let n1 = NodeInfo { id: id(0x12), addr: addr("10.0.0.12:6881") };
    let answer = response(&msg.tid, Response { id: id(0x99), nodes: vec![n1], ..Default::default() });
    d.handle_datagram(addr("192.0.2.66:6881"), &answer, ms(30_200));
    assert!(drain(&mut d).0.is_empty());
    // The real answer: the router stays out of the table and its node is asked next.
    d.handle_datagram(router, &answer, ms(30_200));
    assert_eq!(d.table_len(Family::V4), 0);
    let (to, msg) = only_sent(&mut d);
    assert_eq!(to, n1.addr);
    d.handle_datagram(n1.addr, &response(&msg.tid, Response { id: n1.id, ..Default::default() }), ms(30_300));
    assert_eq!(d.table_len(Family::V4), 1);
    let (_, other) = drain(&mut d);
    assert!(other.contains(&DhtOutput::Event(DhtEvent::Bootstrapped)));
    assert!(d.is_bootstrapped());
}

#[test]
fn nodes_from_port_messages_are_pinged_and_kept_if_they_answer() {
    let mut d = dht();
    let node = addr("10.0.0.8:7000");
    d.add_node(node, ms(0));
    d.add_node(addr("10.0.0.8:0"), ms(0));
    let (to, msg) = only_sent(&mut d);
    assert_eq!(to, node);
    assert!(matches!(msg.body, Body::Query(Query { method: Method::Ping, .. })));
    d.handle_datagram(node, &response(&msg.tid, Response { id: id(0x08), ..Default::default() }), ms(50));
    assert_eq!(d.table(Family::V4).get(&id(0x08)).map(|e| e.info.addr), Some(node));
}

#[test]
fn unanswered_queries_time_out_and_lookups_end() {
    let mut d = dht();
    d.add_bootstrap(addr("192.0.2.1:6881"), ms(0));
    let hash = InfoHash([7; 20]);
    let lookup = d.get_peers(hash, ms(0));
    let (sent, _) = drain(&mut d);
    assert_eq!(sent.len(), 1);
    assert_eq!(d.poll_timeout(), ms(2000));
    d.handle_timeout(ms(2000));
    let (_, other) = drain(&mut d);
    assert_eq!(other, vec![DhtOutput::Event(DhtEvent::LookupDone { lookup, info_hash: hash, hops: 0, queried: 1 })]);
    assert_eq!(d.active_lookups(), 0);
    // With no contacts at all a lookup ends at once.
    let lone = dht().get_peers(hash, ms(0));
    assert_eq!(lone, LookupId(0));
}

#[test]
fn peers_are_reported_and_announces_go_to_nodes_that_gave_tokens() {
    let mut d = dht();
    let hash = InfoHash([0x40; 20]);
    let nodes: Vec<NodeInfo> =
        (0..3u8).map(|i| NodeInfo { id: id(0x40 + i), addr: addr(&format!("10.0.1.{i}:6881")) }).collect();
    for n in &nodes {
        learn(&mut d, *n, ms(0));
    }
    let lookup = d.announce(hash, 5555, false, ms(0));
    let (sent, _) = drain(&mut d);
    assert_eq!(sent.len(), 3);
    let peer = addr("10.9.9.9:1234");
    for (to, msg) in &sent {
        let n = nodes.iter().find(|n| n.addr == *to).unwrap();
        let r = Response { id: n.id, token: Some(vec![n.id.0[0]]), values: vec![peer], ..Default::default() };
        d.handle_datagram(*to, &response(&msg.tid, r), ms(10));
    }
    let (sent, other) = drain(&mut d);
    let peers_events: Vec<_> = other.iter().filter(|o| matches!(o, DhtOutput::Event(DhtEvent::Peers { .. }))).collect();
    assert_eq!(peers_events.len(), 1, "the same peer is reported once");
    assert!(other.contains(&DhtOutput::Event(DhtEvent::LookupDone { lookup, info_hash: hash, hops: 1, queried: 3 })));
    assert_eq!(sent.len(), 3);
    for (to, msg) in sent {
        let n = nodes.iter().find(|n| n.addr == to).unwrap();
        let Body::Query(q) = msg.body else { panic!("not a query") };
        assert_eq!(
            q.method,
            Method::AnnouncePeer {
                info_hash: hash,
                port: Some(5555),
                implied_port: false,
                token: vec![n.id.0[0]],
                seed: false
            }
        );
    }
}

#[test]
fn outgoing_queries_respect_the_rate_limit() {
    let cfg = DhtConfig { max_queries_per_sec: 2, ..config() };
    let nodes: Vec<NodeInfo> =
        (1..=10u8).map(|i| NodeInfo { id: id(i), addr: addr(&format!("10.0.2.{i}:6881")) }).collect();
    let saved = Snapshot { id: id(0x11), nodes }.encode();
    let mut d = Dht::with_saved(cfg, &saved, 3, ms(0)).unwrap();
    d.bootstrap(ms(0));
    assert_eq!(drain(&mut d).0.len(), 2);
    assert_eq!(d.poll_timeout(), ms(500));
    d.handle_timeout(ms(500));
    assert_eq!(drain(&mut d).0.len(), 1);
}

#[test]
fn snapshots_restore_the_id_and_the_contacts_and_refuse_garbage() {
    let mut d = dht();
    let good = NodeInfo { id: id(0x21), addr: addr("10.0.3.1:6881") };
    let good6 = NodeInfo { id: id(0x22), addr: addr("[2001:db8::22]:6881") };
    learn(&mut d, good, ms(0));
    learn(&mut d, good6, ms(0));
    let bytes = d.routing_snapshot();
    let snap = Snapshot::decode(&bytes).unwrap();
    assert_eq!((snap.id, snap.nodes), (id(0x11), vec![good, good6]));

    let mut resumed = Dht::with_saved(config(), &bytes, 9, ms(0)).unwrap();
    assert_eq!(resumed.node_id(), id(0x11));
    resumed.bootstrap(ms(0));
    let pinged: Vec<SocketAddr> = drain(&mut resumed)
        .0
        .into_iter()
        .filter(|(_, m)| matches!(&m.body, Body::Query(Query { method: Method::Ping, .. })))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(pinged, vec![good.addr, good6.addr]);

    for garbage in [&b""[..], b"not bencode", b"d2:id1:xe", b"llllllllllllllllllllllllllll"] {
        assert!(Dht::with_saved(config(), garbage, 1, ms(0)).is_err());
        assert!(d.restore(garbage, ms(0)).is_err());
    }
    let v4_only = DhtConfig { ipv6: false, ..config() };
    let mut only4 = Dht::new(v4_only, id(0x55), 1, ms(0));
    assert_eq!(only4.restore(&bytes, ms(0)), Ok(1));
}

#[test]
fn stale_nodes_are_pinged_and_replaced_after_two_silences() {
    let mut d = dht();
    // id(0x11) is ours; eight nodes in the far half (top bit set) and one near node to split.
    let far: Vec<NodeInfo> =
        (0..8u8).map(|i| NodeInfo { id: id(0x80 + i), addr: addr(&format!("10.0.4.{i}:6881")) }).collect();
    for n in &far {
        learn(&mut d, *n, ms(0));
    }
    learn(&mut d, NodeInfo { id: id(0x12), addr: addr("10.0.4.100:6881") }, ms(0));
    // Sixteen minutes on, everyone is questionable; housekeeping pings the oldest per bucket.
    let later = ms(16 * 60_000);
    d.handle_timeout(later);
    let pings: Vec<SocketAddr> = drain(&mut d)
        .0
        .into_iter()
        .filter(|(_, m)| matches!(&m.body, Body::Query(Query { method: Method::Ping, .. })))
        .map(|(to, _)| to)
        .collect();
    assert!(pings.contains(&far[0].addr), "{pings:?}");
    // A query from a newcomer in that bucket: it gets probed.
    let newcomer = NodeInfo { id: id(0x90), addr: addr("10.0.5.1:6881") };
    d.handle_datagram(newcomer.addr, &query(b"q1", newcomer.id, Method::Ping), later);
    let (sent, _) = drain(&mut d);
    let (_, probe) =
        sent.iter().find(|(to, m)| *to == newcomer.addr && matches!(m.body, Body::Query(_))).expect("newcomer probed");
    d.handle_datagram(newcomer.addr, &response(&probe.tid, Response { id: newcomer.id, ..Default::default() }), later);
    assert!(d.table(Family::V4).get(&newcomer.id).is_none(), "bucket full: waits as a replacement");
    // The stale node misses two pings and the newcomer takes its place.
    let mut t = later;
    for _ in 0..2 {
        t += Duration::from_secs(5);
        d.handle_timeout(t);
        drain(&mut d);
        t += Duration::from_secs(5);
        d.handle_timeout(t);
        drain(&mut d);
    }
    assert!(d.table(Family::V4).get(&newcomer.id).is_some());
    assert_eq!(d.table_len(Family::V4), 9);
}

#[test]
fn hostile_datagrams_never_panic_the_machine() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut d = dht();
    learn(&mut d, NodeInfo { id: id(0x21), addr: addr("10.0.3.1:6881") }, ms(0));
    d.add_bootstrap(addr("192.0.2.1:6881"), ms(0));
    d.get_peers(InfoHash([3; 20]), ms(0));
    let (sent, _) = drain(&mut d);
    let templates: Vec<Vec<u8>> = vec![
        query(b"aa", id(2), Method::GetPeers { info_hash: InfoHash([3; 20]), scrape: false }),
        query(
            b"ab",
            id(2),
            Method::AnnouncePeer {
                info_hash: InfoHash([3; 20]),
                port: Some(1),
                implied_port: true,
                token: vec![1],
                seed: false,
            },
        ),
        response(
            &sent[0].1.tid,
            Response {
                id: id(0x21),
                nodes: vec![NodeInfo { id: id(5), addr: addr("10.0.0.5:1") }],
                values: vec![addr("10.0.0.6:2")],
                token: Some(vec![1, 2]),
                ..Default::default()
            },
        ),
    ];
    let mut now = ms(1);
    for round in 0..30_000 {
        let mut m = templates[round % templates.len()].clone();
        for _ in 0..rng.random_range(0..4) {
            let at = rng.random_range(0..m.len());
            m[at] = rng.random();
        }
        if round % 7 == 0 {
            m.truncate(rng.random_range(0..m.len()));
        }
        let from = if round % 2 == 0 { sent[0].0 } else { addr("10.0.0.77:1") };
        d.handle_datagram(from, &m, now);
        now += Duration::from_millis(1);
        if round % 100 == 0 {
            d.handle_timeout(now);
        }
        drain(&mut d);
    }
    // Sources the DHT must never answer: port 0 and broadcast.
    d.handle_datagram(addr("10.0.0.2:0"), &templates[0], now);
    d.handle_datagram(addr("255.255.255.255:1"), &templates[0], now);
    assert!(drain(&mut d).0.is_empty());
}

/// Gets a token from `d` for `from` and announces `port` with the `seed` flag.
fn announce_to(d: &mut Dht, from: SocketAddr, hash: InfoHash, seed: bool, now: Instant) {
    d.handle_datagram(from, &query(b"gt", id(2), Method::GetPeers { info_hash: hash, scrape: false }), now);
    let Body::Response(r) = only_reply(d).1.body else { panic!("not a response") };
    let token = r.token.expect("a token");
    let method = Method::AnnouncePeer { info_hash: hash, port: Some(from.port()), implied_port: false, token, seed };
    d.handle_datagram(from, &query(b"an", id(2), method), now);
    assert!(matches!(only_reply(d).1.body, Body::Response(_)));
}

/// What `d` answers `from` for a `get_peers` with `want` and `scrape`: the response and its size.
fn ask_peers(
    d: &mut Dht,
    from: SocketAddr,
    hash: InfoHash,
    want: Want,
    scrape: bool,
    now: Instant,
) -> (Response, usize) {
    let msg = Message {
        tid: b"gp".to_vec(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id: id(9), want, method: Method::GetPeers { info_hash: hash, scrape } }),
    };
    d.handle_datagram(from, &msg.encode(), now);
    let (sent, _) = drain(d);
    let (_, data) = sent.into_iter().find(|(_, m)| matches!(m.body, Body::Response(_))).expect("an answer");
    let size = data.encode().len();
    let Body::Response(r) = data.body else { unreachable!("filtered above") };
    (r, size)
}

#[test]
fn scrape_queries_get_filters_of_the_stored_seeds_and_peers() {
    let mut d = dht();
    learn(&mut d, NodeInfo { id: id(0x31), addr: addr("10.0.3.1:6881") }, ms(0));
    learn(&mut d, NodeInfo { id: id(0x32), addr: addr("[2001:db8::32]:6881") }, ms(0));
    let hash = InfoHash([0x42; 20]);
    announce_to(&mut d, addr("10.0.0.2:6881"), hash, true, ms(1));
    announce_to(&mut d, addr("10.0.0.3:6881"), hash, false, ms(1));
    // The same seed on a second port: still one IP, one seed.
    announce_to(&mut d, addr("10.0.0.2:7000"), hash, true, ms(1));
    let both = Want { v4: true, v6: true };
    let asker = addr("10.0.0.9:1");

    // Without scrape=1 the answer is what it always was: no filters, both families' nodes.
    let (plain, _) = ask_peers(&mut d, asker, hash, both, false, ms(2));
    assert_eq!((plain.bloom_seeds.as_ref(), plain.bloom_peers.as_ref()), (None, None));
    assert_eq!((plain.nodes.len(), plain.nodes6.len(), plain.values.len()), (1, 1, 3));

    // With it: BFsd holds the seed's IP, BFpe the other, and only the asker's family of nodes
    // comes back (BEP 33: the filters take the room).
    let (scrape, _) = ask_peers(&mut d, asker, hash, both, true, ms(2));
    let seeds = scrape.bloom_seeds.expect("BFsd");
    let peers = scrape.bloom_peers.expect("BFpe");
    assert!(seeds.contains(addr("10.0.0.2:1").ip()) && !seeds.contains(addr("10.0.0.3:1").ip()));
    assert!(peers.contains(addr("10.0.0.3:1").ip()) && !peers.contains(addr("10.0.0.2:1").ip()));
    assert!((seeds.estimate() - 1.0).abs() < 0.01 && (peers.estimate() - 1.0).abs() < 0.01);
    assert_eq!((scrape.nodes.len(), scrape.nodes6.len(), scrape.values.len()), (1, 0, 3));
    assert!(scrape.token.is_some());

    // A torrent we store nothing for: no filters (BEP 33 adds them only for known ones).
    let (unknown, _) = ask_peers(&mut d, asker, InfoHash([0x43; 20]), both, true, ms(2));
    assert_eq!((unknown.bloom_seeds, unknown.bloom_peers), (None, None));
}

#[test]
fn scrape_answers_fit_in_one_small_datagram() {
    let mut d = dht();
    let hash = InfoHash([0x42; 20]);
    for n in 0..60u16 {
        announce_to(
            &mut d,
            SocketAddr::new(format!("2001:db8::{n:x}").parse().unwrap(), 6881),
            hash,
            n % 2 == 0,
            ms(1),
        );
    }
    let asker = addr("[2001:db8:1::9]:1");
    let (plain, _) = ask_peers(&mut d, asker, hash, Want::default(), false, ms(2));
    assert_eq!(plain.values.len(), config().max_values_per_reply);
    let (scrape, size) = ask_peers(&mut d, asker, hash, Want::default(), true, ms(2));
    assert!(size <= server::MAX_SCRAPE_REPLY, "{size} bytes");
    assert!(!scrape.values.is_empty() && scrape.values.len() < plain.values.len(), "{}", scrape.values.len());
    let seeds = scrape.bloom_seeds.expect("BFsd").estimate();
    let peers = scrape.bloom_peers.expect("BFpe").estimate();
    assert!((seeds - 30.0).abs() < 1.5 && (peers - 30.0).abs() < 1.5, "{seeds} {peers}");
}

/// A `get_peers` answer written by hand, so that it can be wrong in ways ours never are.
fn raw_answer(tid: &[u8], node: NodeId, fields: Vec<(&str, bt_bencode::Value)>) -> Vec<u8> {
    use bt_bencode::{ByteString, Value};
    let mut r: std::collections::BTreeMap<ByteString, Value> = std::collections::BTreeMap::new();
    r.insert("id".into(), Value::ByteStr(ByteString::from(node.0.to_vec())));
    for (k, v) in fields {
        r.insert(k.into(), v);
    }
    let mut top: std::collections::BTreeMap<ByteString, Value> = std::collections::BTreeMap::new();
    top.insert("t".into(), Value::ByteStr(ByteString::from(tid.to_vec())));
    top.insert("y".into(), Value::ByteStr(ByteString::from(b"r".to_vec())));
    top.insert("r".into(), Value::Dict(r));
    bt_bencode::to_vec(&Value::Dict(top)).unwrap()
}

#[test]
fn a_scrape_lookup_merges_filters_and_survives_hostile_answers() {
    use bt_bencode::{ByteString, Value};
    let bytes = |b: &[u8]| Value::ByteStr(ByteString::from(b.to_vec()));
    let values = |peers: &[&str]| Value::List(peers.iter().map(|p| bytes(&node::compact_addr(&addr(p)))).collect());
    let filter = |prefix: [u8; 2], n: u8| {
        let mut f = bloom::ScrapeBloom::new();
        for i in 1..=n {
            f.insert(std::net::Ipv4Addr::new(10, prefix[0], prefix[1], i).into());
        }
        bytes(f.as_bytes())
    };
    let mut d = dht();
    let nodes: Vec<NodeInfo> =
        (0..5u8).map(|i| NodeInfo { id: id(0x40 + i), addr: addr(&format!("10.0.1.{i}:6881")) }).collect();
    for n in &nodes {
        learn(&mut d, *n, ms(0));
    }
    let hash = InfoHash([0x40; 20]);
    let lookup = d.scrape(hash, ms(0));
    let mut events = Vec::new();
    let mut asked = 0;
    let mut now = 0;
    while asked < nodes.len() {
        let (sent, other) = drain(&mut d);
        events.extend(other);
        assert!(!sent.is_empty(), "the lookup asks every node");
        for (to, msg) in sent {
            let Body::Query(Query { method: Method::GetPeers { info_hash, scrape: true }, .. }) = msg.body else {
                panic!("not a scrape: {msg:?}")
            };
            assert_eq!(info_hash, hash);
            let i = nodes.iter().position(|n| n.addr == to).unwrap();
            asked += 1;
            now += 10;
            let answer = match i {
                // BEP 33: five seeds and three peers, holding its own value.
                0 => raw_answer(
                    &msg.tid,
                    nodes[i].id,
                    vec![("BFsd", filter([1, 0], 5)), ("BFpe", filter([2, 0], 3)), ("values", values(&["10.1.0.1:1"]))],
                ),
                // Filters of the wrong size and type: ignored, its value counts as a peer.
                1 => raw_answer(
                    &msg.tid,
                    nodes[i].id,
                    vec![
                        ("BFsd", bytes(&[0xff; 255])),
                        ("BFpe", Value::from(7u8)),
                        ("values", values(&["10.3.0.1:1"])),
                    ],
                ),
                // A full filter claims thousands of seeds: implausible, dropped.
                2 => raw_answer(
                    &msg.tid,
                    nodes[i].id,
                    vec![
                        ("BFsd", bytes(&[0xff; 256])),
                        ("BFpe", bytes(&[0; 256])),
                        ("values", values(&["10.3.0.2:1"])),
                    ],
                ),
                // Filters that do not hold the node's own value: dropped, the value counts.
                3 => raw_answer(
                    &msg.tid,
                    nodes[i].id,
                    vec![
                        ("BFsd", filter([4, 0], 50)),
                        ("BFpe", filter([5, 0], 50)),
                        ("values", values(&["10.3.0.3:1"])),
                    ],
                ),
                // Not KRPC at all: the query times out.
                _ => b"d1:rd2:id3:abcee".to_vec(),
            };
            d.handle_datagram(to, &answer, ms(now));
        }
    }
    // The garbage answer's query times out two seconds after it went out.
    d.handle_timeout(ms(now + 2_000));
    let (_, other) = drain(&mut d);
    events.extend(other);
    assert!(!events.iter().any(|e| matches!(e, DhtOutput::Event(DhtEvent::Peers { .. }))), "a scrape reports counts");
    let swarm = SwarmCount { seeders: 5, leechers: 6, peers_seen: 4, nodes_answered: 4, nodes_with_filters: 1 };
    let at = events.iter().position(|e| *e == DhtOutput::Event(DhtEvent::Scraped { lookup, info_hash: hash, swarm }));
    let done = events
        .iter()
        .position(|e| matches!(e, DhtOutput::Event(DhtEvent::LookupDone { lookup: l, .. }) if *l == lookup));
    assert!(at.is_some() && at < done, "{events:?}");
}

#[test]
fn a_scrape_with_nobody_to_ask_ends_at_once_with_zeros() {
    let mut d = dht();
    let hash = InfoHash([0x40; 20]);
    let lookup = d.scrape(hash, ms(0));
    let (sent, other) = drain(&mut d);
    assert!(sent.is_empty());
    assert_eq!(other[0], DhtOutput::Event(DhtEvent::Scraped { lookup, info_hash: hash, swarm: SwarmCount::default() }));
}
