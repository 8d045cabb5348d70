//! Tests of the interop harness itself, with no Shoal involved: real peers talk to each other
//! through opentracker on loopback. If these fail, the interop tests' failures say nothing
//! about Shoal.

use std::time::Duration;

use shoal_tests::data::{self, Compare};
use shoal_tests::peers::{self, LtKind, Transmission};
use shoal_tests::wait::loopback;
use shoal_tests::{assert_same_tree, free_port, InfoHash, Opentracker, TestDir};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn opentracker_whitelist_is_enforced_and_reloaded() {
    let td = TestDir::new("harness-opentracker");
    let (a, b, c) = (InfoHash([1; 20]), InfoHash([2; 20]), InfoHash([3; 20]));
    let tracker = Opentracker::start(&td, &[a]);
    assert!(tracker.is_allowed(a).unwrap());
    assert!(!tracker.is_allowed(b).unwrap());
    tracker.allow(b);
    assert!(tracker.is_allowed(a).unwrap());
    assert!(!tracker.is_allowed(c).unwrap());
    assert_eq!(tracker.scrape(a).unwrap(), (0, 0));
}

#[test]
fn libtorrent_seeds_to_libtorrent_through_opentracker() {
    let td = TestDir::new("harness-lt-lt");
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 11);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 32 * 1024, &[tracker.http_url()], LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);

    let mut seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    tracker.wait_swarm(hash, 1, 0, TIMEOUT);
    let out = td.dir("out");
    let mut leech = peers::lt_leech(&td, &torrent, &out, free_port(), &[], TIMEOUT);
    leech.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());

    // Both leave the swarm politely: the tracker forgets them.
    seeder.terminate_expect_success(Duration::from_secs(20));
    tracker.wait_swarm_empty(hash, Duration::from_secs(20));
}

#[test]
fn libtorrent_seeds_hybrid_torrent_over_udp_tracker() {
    let td = TestDir::new("harness-lt-hybrid");
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 12);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 64 * 1024, &[tracker.udp_url()], LtKind::Hybrid);
    let info = peers::lt_info(&td, &torrent);
    let pads = info["files"].as_array().unwrap().iter().filter(|f| f["pad"] == true).count();
    assert!(pads > 0, "a hybrid torrent of this tree must have pad files: {info}");
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);

    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    let out = td.dir("out");
    let mut leech = peers::lt_leech(&td, &torrent, &out, free_port(), &[], TIMEOUT);
    leech.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
}

#[test]
fn aria2_downloads_mktorrent_torrent_from_libtorrent() {
    let td = TestDir::new("harness-aria2");
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 13);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::mktorrent(&td, &content, &torrent, &tracker.http_url(), 15);
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);

    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    tracker.wait_swarm(hash, 1, 0, TIMEOUT);
    let out = td.dir("out");
    let mut aria = peers::aria2(&td, &torrent, &out, free_port());
    aria.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
}

#[test]
fn transmission_downloads_from_libtorrent_that_dials_it() {
    let td = TestDir::new("harness-transmission");
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 14);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 32 * 1024, &[tracker.http_url()], LtKind::V1);
    tracker.allow(InfoHash::of_file(&torrent));

    let out = td.dir("out");
    let mut trans = Transmission::start(&td, &torrent, &out, free_port());
    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[trans.addr()]);
    trans.wait_done(TIMEOUT);
    let lenient = Compare { missing_empty_ok: true, ..Compare::default() };
    assert_same_tree(&content, &out.join("payload"), lenient);
}

#[test]
fn corrupt_peer_speaks_the_protocol_and_libtorrent_rejects_its_data() {
    let td = TestDir::new("harness-corrupt");
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", 2 * 1024 * 1024 + 77, 15);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 64 * 1024, &[], LtKind::V1);

    let bad_port = free_port();
    let mut bad = peers::corrupt_peer(&td, &torrent, &src, bad_port);
    let out = td.dir("out");
    let leech_port = free_port();
    let mut leech = peers::lt_leech(&td, &torrent, &out, leech_port, &[loopback(bad_port)], TIMEOUT);
    leech.wait_stderr("report a failed hash check", TIMEOUT, |s| s.contains("hash_failed_alert"));
    assert!(bad.stderr().contains("sent corrupted block"), "{}", bad.logs());
    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[loopback(leech_port)]);
    leech.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
    let _ = bad.wait_exit(Duration::ZERO);
}

#[test]
fn info_hash_agrees_with_libtorrent_and_transmission() {
    let td = TestDir::new("harness-infohash");
    let src = td.dir("src");
    let tree = data::tree(&src, "payload", &data::awkward_tree(), 16);
    let single = data::single_file(&src, "single.bin", 300_001, 17);
    let url = "http://127.0.0.1:1/announce".to_string();
    let cases = [
        ("lt-tree", tree.clone(), LtKind::V1),
        ("lt-hybrid", tree.clone(), LtKind::Hybrid),
        ("lt-single", single.clone(), LtKind::V1),
    ];
    for (name, path, kind) in cases {
        let torrent = td.join(&format!("{name}.torrent"));
        peers::lt_make(&td, &path, &torrent, 16 * 1024, std::slice::from_ref(&url), kind);
        let ours = InfoHash::of_file(&torrent).hex();
        assert_eq!(peers::lt_info(&td, &torrent)["info_hash"], ours, "{name}");
        if kind == LtKind::V1 {
            // transmission 3.00 cannot open hybrid torrents.
            assert_eq!(peers::transmission_show_hash(&td, &torrent), ours, "{name}");
        }
    }
    let torrent = td.join("mktorrent.torrent");
    peers::mktorrent(&td, &tree, &torrent, &url, 16);
    let ours = InfoHash::of_file(&torrent).hex();
    assert_eq!(peers::lt_info(&td, &torrent)["info_hash"], ours);
    assert_eq!(peers::transmission_show_hash(&td, &torrent), ours);
}
