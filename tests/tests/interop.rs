//! Interop tests: the `shoal` binary against real peers on loopback.
//! (The DHT tests turn libtorrent's DHT on, with its sessions on 127.0.0.1 as the only nodes.)
//!
//! Each test owns a temp dir, its ports and its own opentracker, so they run in parallel.
//! They need the binary (`cargo build -p shoal-api`, or `SHOAL_BIN`) and the Debian packages
//! python3-libtorrent, opentracker, transmission-cli, aria2 and mktorrent (`scripts/test.sh`
//! installs them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_tests::bencode::Value;
use shoal_tests::data::{self, Compare, FileSpec};
use shoal_tests::magnet;
use shoal_tests::on_each_runtime;
use shoal_tests::peers::{self, LtKind, Transmission};
use shoal_tests::proc::run;
use shoal_tests::shoal::{self, Runtime};
use shoal_tests::wait::{loopback, wait_for};
use shoal_tests::{assert_same_tree, free_port, InfoHash, Opentracker, Proc, TestDir};

/// Upper bound for any transfer in these tests (they take seconds when things work).
const TIMEOUT: Duration = Duration::from_secs(120);

/// How long a second `shoal download` of data already on disk may take.
const RECHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped seeder gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a torrent holds.
enum Payload {
    /// One file, `payload.bin`, of this size.
    Single(u64),
    /// A directory `payload/` with these files.
    Tree(Vec<FileSpec>),
}

impl Payload {
    /// Writes the payload under `root`; returns the path of the file or top directory.
    fn write(&self, root: &Path, seed: u64) -> PathBuf {
        match self {
            Payload::Single(size) => data::single_file(root, "payload.bin", *size, seed),
            Payload::Tree(files) => data::tree(root, "payload", files, seed),
        }
    }
}

/// The file name of a payload path (the torrent's name).
fn name_of(content: &Path) -> &str {
    content.file_name().and_then(|n| n.to_str()).expect("payload paths are UTF-8 names")
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// 1. Shoal downloads from a libtorrent seeder found through opentracker.

/// libtorrent seeds `payload` (a torrent made by libtorrent); `shoal download` fetches it via
/// the tracker and must produce identical files, no pad files, and a second run on the same
/// directory must succeed from disk alone (the seeder is gone by then).
fn shoal_downloads_from_libtorrent(
    test: &str,
    rt: Runtime,
    payload: Payload,
    piece_size: u64,
    kind: LtKind,
    udp: bool,
) {
    let td = TestDir::new(&format!("{test}-{}", rt.name()));
    let src = td.dir("seed");
    let content = payload.write(&src, piece_size ^ 0x5eed);
    let name = name_of(&content);
    let tracker = Opentracker::start(&td, &[]);
    let url = if udp { tracker.udp_url() } else { tracker.http_url() };
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, piece_size, &[url], kind);
    if kind == LtKind::Hybrid {
        let info = peers::lt_info(&td, &torrent);
        let pads = info["files"].as_array().expect("files").iter().filter(|f| f["pad"] == true);
        assert!(pads.count() > 0, "test needs a torrent with pad files: {info}");
    }
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);

    let mut seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    tracker.wait_peers(hash, 1, TIMEOUT);
    let out = td.dir("out");
    let mut dl = shoal::download(&td, rt, "shoal_download", &torrent, &out, free_port(), &[]);
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join(name), Compare::default());
    assert!(!out.join(".pad").exists(), "pad files written to {}", out.display());

    // With the only seeder gone, a second run can succeed only from the data on disk.
    seeder.terminate(STOP_TIMEOUT);
    let mut again = shoal::download(&td, rt, "shoal_download_again", &torrent, &out, free_port(), &[]);
    again.expect_success(RECHECK_TIMEOUT);
    assert_same_tree(&content, &out.join(name), Compare::default());
}

fn shoal_downloads_large_single_file_from_libtorrent(rt: Runtime) {
    shoal_downloads_from_libtorrent("lt-to-shoal-64mib", rt, Payload::Single(64 * MIB), 256 * KIB, LtKind::V1, false);
}
on_each_runtime!(shoal_downloads_large_single_file_from_libtorrent);

fn shoal_downloads_nested_tree_from_libtorrent_via_udp_tracker(rt: Runtime) {
    shoal_downloads_from_libtorrent(
        "lt-to-shoal-tree-udp",
        rt,
        Payload::Tree(data::awkward_tree()),
        64 * KIB,
        LtKind::V1,
        true,
    );
}
on_each_runtime!(shoal_downloads_nested_tree_from_libtorrent_via_udp_tracker);

fn shoal_downloads_tree_with_16k_pieces_from_libtorrent(rt: Runtime) {
    shoal_downloads_from_libtorrent(
        "lt-to-shoal-16k",
        rt,
        Payload::Tree(data::awkward_tree()),
        16 * KIB,
        LtKind::V1,
        false,
    );
}
on_each_runtime!(shoal_downloads_tree_with_16k_pieces_from_libtorrent);

fn shoal_downloads_file_with_1m_pieces_and_short_last_piece_from_libtorrent(rt: Runtime) {
    shoal_downloads_from_libtorrent("lt-to-shoal-1m", rt, Payload::Single(9 * MIB + 12_345), MIB, LtKind::V1, false);
}
on_each_runtime!(shoal_downloads_file_with_1m_pieces_and_short_last_piece_from_libtorrent);

fn shoal_downloads_hybrid_torrent_with_pad_files_without_writing_them(rt: Runtime) {
    shoal_downloads_from_libtorrent(
        "lt-to-shoal-hybrid",
        rt,
        Payload::Tree(data::awkward_tree()),
        32 * KIB,
        LtKind::Hybrid,
        false,
    );
}
on_each_runtime!(shoal_downloads_hybrid_torrent_with_pad_files_without_writing_them);

// ---------------------------------------------------------------------------------------------
// 2. libtorrent, transmission and aria2 download from `shoal seed`.

/// Who makes the torrent a Shoal seeder serves.
#[derive(Clone, Copy)]
enum Maker {
    Shoal,
    Mktorrent,
}

/// A torrent of `content` with one HTTP tracker, made by `maker`.
fn make_torrent(td: &TestDir, maker: Maker, content: &Path, url: &str, piece_log2: u32) -> PathBuf {
    let torrent = td.join("payload.torrent");
    match maker {
        Maker::Shoal => shoal::create(td, content, &torrent, &[url.to_string()], 1 << piece_log2),
        Maker::Mktorrent => peers::mktorrent(td, content, &torrent, url, piece_log2),
    }
    torrent
}

/// Starts `shoal seed` and waits until the tracker lists it as a seeder (failing at once if
/// the seeder exits first).
fn start_shoal_seed(
    td: &TestDir,
    rt: Runtime,
    tracker: &Opentracker,
    torrent: &Path,
    src: &Path,
    dial: &[std::net::SocketAddr],
) -> Proc {
    let mut seeder = shoal::seed(td, rt, torrent, src, free_port(), dial);
    let hash = InfoHash::of_file(torrent);
    let mut last = (0, 0);
    let res = wait_for("shoal seed to be listed as a seeder by the tracker", TIMEOUT, || {
        if let Some(status) = seeder.try_status() {
            return Some(Err(format!("shoal seed exited with {status}")));
        }
        last = tracker.scrape(hash).ok()?;
        (last.0 >= 1).then_some(Ok(()))
    });
    match res {
        Ok(Ok(())) => seeder,
        Ok(Err(e)) | Err(e) => panic!("{e} (last scrape: {last:?})"),
    }
}

/// A payload, its tracker (allowing its torrent) and the torrent, for tests that seed with Shoal.
struct Setup {
    td: TestDir,
    src: PathBuf,
    content: PathBuf,
    tracker: Opentracker,
    torrent: PathBuf,
}

fn setup(test: &str, rt: Runtime, payload: Payload, maker: Maker, piece_log2: u32) -> Setup {
    let td = TestDir::new(&format!("{test}-{}", rt.name()));
    let src = td.dir("seed");
    let content = payload.write(&src, u64::from(piece_log2) * 31);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = make_torrent(&td, maker, &content, &tracker.http_url(), piece_log2);
    tracker.allow(InfoHash::of_file(&torrent));
    Setup { td, src, content, tracker, torrent }
}

fn libtorrent_downloads_from_shoal_seed(rt: Runtime) {
    let s = setup("shoal-to-lt", rt, Payload::Tree(data::awkward_tree()), Maker::Shoal, 15);
    let hash = InfoHash::of_file(&s.torrent);
    let mut seeder = start_shoal_seed(&s.td, rt, &s.tracker, &s.torrent, &s.src, &[]);
    let out = s.td.dir("out");
    let mut leech = peers::lt_leech(&s.td, &s.torrent, &out, free_port(), &[], TIMEOUT);
    leech.expect_success(TIMEOUT);
    assert_same_tree(&s.content, &out.join("payload"), Compare::default());

    // SIGTERM: exit 0 after announcing `stopped` (the leecher left already).
    seeder.terminate_expect_success(STOP_TIMEOUT);
    s.tracker.wait_swarm_empty(hash, Duration::from_secs(20));
}
on_each_runtime!(libtorrent_downloads_from_shoal_seed);

fn aria2_downloads_from_shoal_seed(rt: Runtime) {
    let s = setup("shoal-to-aria2", rt, Payload::Single(20 * MIB + 1), Maker::Shoal, 18);
    let mut seeder = start_shoal_seed(&s.td, rt, &s.tracker, &s.torrent, &s.src, &[]);
    let out = s.td.dir("out");
    let mut aria = peers::aria2(&s.td, &s.torrent, &out, free_port());
    aria.expect_success(TIMEOUT);
    assert_same_tree(&s.content, &out.join("payload.bin"), Compare::default());
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(aria2_downloads_from_shoal_seed);

fn transmission_downloads_from_shoal_seed_that_dials_it(rt: Runtime) {
    let s = setup("shoal-to-transmission", rt, Payload::Tree(data::awkward_tree()), Maker::Shoal, 16);
    let out = s.td.dir("out");
    let mut trans = Transmission::start(&s.td, &s.torrent, &out, free_port());
    let mut seeder = start_shoal_seed(&s.td, rt, &s.tracker, &s.torrent, &s.src, &[trans.addr()]);
    trans.wait_done(TIMEOUT);
    // transmission never creates empty files.
    let lenient = Compare { missing_empty_ok: true, ..Compare::default() };
    assert_same_tree(&s.content, &out.join("payload"), lenient);
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(transmission_downloads_from_shoal_seed_that_dials_it);

fn libtorrent_transmission_and_aria2_download_mktorrent_torrent_from_shoal(rt: Runtime) {
    let s = setup("mktorrent-shoal-to-all", rt, Payload::Tree(data::awkward_tree()), Maker::Mktorrent, 15);
    let (lt_out, tr_out, aria_out) = (s.td.dir("out-lt"), s.td.dir("out-tr"), s.td.dir("out-aria2"));
    let mut trans = Transmission::start(&s.td, &s.torrent, &tr_out, free_port());
    let mut seeder = start_shoal_seed(&s.td, rt, &s.tracker, &s.torrent, &s.src, &[trans.addr()]);
    let mut leech = peers::lt_leech(&s.td, &s.torrent, &lt_out, free_port(), &[], TIMEOUT);
    let mut aria = peers::aria2(&s.td, &s.torrent, &aria_out, free_port());
    leech.expect_success(TIMEOUT);
    aria.expect_success(TIMEOUT);
    trans.wait_done(TIMEOUT);
    assert_same_tree(&s.content, &lt_out.join("payload"), Compare::default());
    assert_same_tree(&s.content, &aria_out.join("payload"), Compare::default());
    let lenient = Compare { missing_empty_ok: true, ..Compare::default() };
    assert_same_tree(&s.content, &tr_out.join("payload"), lenient);
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(libtorrent_transmission_and_aria2_download_mktorrent_torrent_from_shoal);

// ---------------------------------------------------------------------------------------------
// 3. A swarm: one Shoal seeder, three Shoal leechers and a libtorrent leecher.

fn swarm_of_shoal_and_libtorrent_peers_completes(rt: Runtime) {
    let mut files = data::awkward_tree();
    files.push(FileSpec::new("big/bulk.bin", 16 * MIB + 3));
    let td = TestDir::new(&format!("swarm-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &files, 77);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 64 * KIB, &[tracker.http_url()], LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);

    let mut seeder = start_shoal_seed(&td, rt, &tracker, &torrent, &src, &[]);
    let mut leechers: Vec<(Proc, PathBuf)> = (0..3)
        .map(|i| {
            let out = td.dir(&format!("out-shoal-{i}"));
            let name = format!("shoal_download_{i}");
            (shoal::download(&td, rt, &name, &torrent, &out, free_port(), &[]), out)
        })
        .collect();
    let lt_out = td.dir("out-lt");
    leechers.push((peers::lt_leech(&td, &torrent, &lt_out, free_port(), &[], TIMEOUT), lt_out));
    for (proc, out) in &mut leechers {
        proc.expect_success(TIMEOUT);
        assert_same_tree(&content, &out.join("payload"), Compare::default());
    }
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(swarm_of_shoal_and_libtorrent_peers_completes);

// ---------------------------------------------------------------------------------------------
// 4. Hostile peer: corrupt data is detected, its sender banned, the download still completes.

fn corrupt_peer_is_banned_and_download_completes_from_honest_seeder(rt: Runtime) {
    let td = TestDir::new(&format!("corrupt-peer-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", 4 * MIB + 333, 4242);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 64 * KIB, &[tracker.http_url()], LtKind::V1);
    tracker.allow(InfoHash::of_file(&torrent));

    // First the corrupt peer alone, so Shoal surely gets bad pieces from it.
    let bad_port = free_port();
    let _bad = peers::corrupt_peer(&td, &torrent, &src, bad_port);
    let out = td.dir("out");
    let dl_port = free_port();
    let mut dl = shoal::download(&td, rt, "shoal_download", &torrent, &out, dl_port, &[loopback(bad_port)]);
    dl.wait_stderr("report a failed hash check", TIMEOUT, |s| s.contains("hash check failed for piece"));

    // Then an honest seeder, which dials Shoal (the tracker gave Shoal no peers earlier).
    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[loopback(dl_port)]);
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
    let banned = format!("banned peer 127.0.0.1:{bad_port}");
    assert!(dl.stderr().contains(&banned), "no `{banned}` in the log\n{}", dl.logs());
}
on_each_runtime!(corrupt_peer_is_banned_and_download_completes_from_honest_seeder);

// ---------------------------------------------------------------------------------------------
// 5. Hostile .torrent files: a clear one-line error, no panic, nothing written outside.

/// A multi-file info dict with one 10-byte file at `path`.
fn multi_file_torrent(path: &[&str]) -> Vec<u8> {
    let file =
        Value::dict([("length", Value::Int(10)), ("path", Value::List(path.iter().map(|c| Value::str(c)).collect()))]);
    let info = Value::dict([
        ("files", Value::List(vec![file])),
        ("name", Value::str("evil")),
        ("piece length", Value::Int(16 * 1024)),
        ("pieces", Value::Bytes(vec![0xAB; 20])),
    ]);
    Value::dict([("info", info)]).encode()
}

/// A single-file info dict named `name`.
fn single_file_torrent(name: &str) -> Vec<u8> {
    let info = Value::dict([
        ("length", Value::Int(10)),
        ("name", Value::str(name)),
        ("piece length", Value::Int(16 * 1024)),
        ("pieces", Value::Bytes(vec![0xAB; 20])),
    ]);
    Value::dict([("info", info)]).encode()
}

/// Asserts `stderr` shows no panic or backtrace.
fn assert_no_panic(what: &str, stderr: &str) {
    for bad in ["panicked at", "stack backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(bad), "{what}: `{bad}` on stderr:\n{stderr}");
    }
}

/// A `shoal` command with backtraces enabled, so that a panic could not go unnoticed.
fn shoal_cmd(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = shoal::command(args);
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

#[test]
fn hostile_torrent_files_are_rejected_with_a_clear_error() {
    let td = TestDir::new("hostile-torrents");
    let abs_target = td.path().join("escaped-absolute.txt");
    let abs_name = td.path().join("escaped-absolute-name.bin");
    let valid = multi_file_torrent(&["fine.txt"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot-path", multi_file_torrent(&["..", "escaped-dotdot.txt"])),
        ("dotdot-nested", multi_file_torrent(&["a", "..", "..", "escaped-nested.txt"])),
        ("dotdot-name", single_file_torrent("..")),
        ("absolute-path", multi_file_torrent(&[abs_target.to_str().expect("utf-8 temp path")])),
        ("absolute-name", single_file_torrent(abs_name.to_str().expect("utf-8 temp path"))),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("garbage", (0..997u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("empty", Vec::new()),
    ];
    for (case, bytes) in &cases {
        let torrent = td.join(&format!("torrents/{case}.torrent"));
        std::fs::write(&torrent, bytes).expect("cannot write torrent");

        let info = run(
            &format!("info-{case}"),
            shoal_cmd(&["info".as_ref(), torrent.as_os_str()]),
            &td.logs(),
            Duration::from_secs(30),
        );
        assert!(!info.status.success(), "shoal info accepted {case}: {}", info.stdout);
        assert_no_panic(&format!("info {case}"), &info.stderr);
        let lines: Vec<&str> = info.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "info {case}: want one error line, got:\n{}", info.stderr);
        eprintln!("info {case}: {}", lines[0]);

        let out = td.dir(&format!("out/{case}"));
        let port = free_port().to_string();
        let dl = run(
            &format!("download-{case}"),
            shoal_cmd(&[
                "download".as_ref(),
                torrent.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                "--listen-port".as_ref(),
                port.as_ref(),
            ]),
            &td.logs(),
            Duration::from_secs(60),
        );
        assert!(!dl.status.success(), "shoal download accepted {case}");
        assert_no_panic(&format!("download {case}"), &dl.stderr);
        let last = dl.stderr.lines().rev().find(|l| !l.trim().is_empty());
        assert!(last.is_some(), "download {case}: no error message");
        eprintln!("download {case}: {}", last.unwrap_or_default());
    }
    // Nothing may have been written outside the output directories.
    assert!(!abs_target.exists() && !abs_name.exists(), "absolute path was written");
    let escaped: Vec<String> =
        data::list_files(td.path()).expect("list test dir").into_iter().filter(|f| f.contains("escaped")).collect();
    assert!(escaped.is_empty(), "files escaped their directory: {escaped:?}");
    for f in ["escaped-dotdot.txt", "escaped-nested.txt"] {
        assert!(!td.path().parent().expect("temp dir has a parent").join(f).exists());
    }
}

// ---------------------------------------------------------------------------------------------
// 6. `shoal create` and `shoal info --json` agree with libtorrent, transmission and mktorrent.

/// File paths of `shoal info --json`, normalised to `/`-joined paths inside the torrent (a
/// list of components or a string, with or without the torrent name in front).
fn shoal_files(info: &serde_json::Value) -> Vec<(String, u64)> {
    let name = info["name"].as_str().expect("name is a string");
    let mut files: Vec<(String, u64)> = info["files"]
        .as_array()
        .expect("files is a list")
        .iter()
        .map(|f| {
            let path = match &f["path"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(parts) => {
                    parts.iter().map(|p| p.as_str().expect("path component is a string")).collect::<Vec<_>>().join("/")
                }
                other => panic!("bad file path {other}"),
            };
            let path = path.strip_prefix(&format!("{name}/")).map(str::to_string).unwrap_or(path);
            (path, f["length"].as_u64().expect("length is a number"))
        })
        .collect();
    files.sort();
    files
}

/// Non-pad files of `lt_info.py`'s JSON, as `(path inside the torrent, length)`.
fn lt_files(info: &serde_json::Value) -> Vec<(String, u64)> {
    let name = info["name"].as_str().expect("name");
    let mut files: Vec<(String, u64)> = info["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["pad"] != true)
        .map(|f| {
            let path = f["path"].as_str().expect("path");
            let path = path.strip_prefix(&format!("{name}/")).unwrap_or(path);
            (path.to_string(), f["length"].as_u64().expect("length"))
        })
        .collect();
    files.sort();
    files
}

/// Every tracker URL in `shoal info --json`'s tiers.
fn shoal_trackers(info: &serde_json::Value) -> Vec<String> {
    info["trackers"]
        .as_array()
        .expect("trackers is a list of tiers")
        .iter()
        .flat_map(|tier| tier.as_array().expect("a tier is a list").iter())
        .map(|u| u.as_str().expect("tracker URL is a string").to_string())
        .collect()
}

#[test]
fn shoal_create_and_info_agree_with_libtorrent_and_transmission() {
    let td = TestDir::new("create-info");
    let src = td.dir("src");
    let specs = data::awkward_tree();
    let tree = data::tree(&src, "payload", &specs, 606);
    let urls = ["http://127.0.0.1:1/announce".to_string(), "udp://127.0.0.1:2/announce".to_string()];
    let torrent = td.join("tree.torrent");
    shoal::create(&td, &tree, &torrent, &urls, 32 * KIB);

    let ours = InfoHash::of_file(&torrent).hex();
    let info = shoal::info_json(&td, &torrent);
    let lt = peers::lt_info(&td, &torrent);
    assert_eq!(info["info_hash"], ours);
    assert_eq!(lt["info_hash"], ours);
    assert_eq!(peers::transmission_show_hash(&td, &torrent), ours);
    let total: u64 = specs.iter().map(|f| f.size).sum();
    assert_eq!(info["name"], "payload");
    assert_eq!(info["total_size"], total);
    assert_eq!(info["piece_length"], 32 * KIB);
    assert_eq!(info["piece_count"], total.div_ceil(32 * KIB));
    assert_eq!(info["private"], false);
    assert_eq!(shoal_trackers(&info), urls.to_vec());
    let mut expected: Vec<(String, u64)> = specs.iter().map(|f| (f.path.clone(), f.size)).collect();
    expected.sort();
    assert_eq!(shoal_files(&info), expected);
    assert_eq!(lt_files(&lt), expected);

    // A private single-file torrent.
    let single = data::single_file(&src, "single.bin", 1_000_003, 607);
    let torrent = td.join("single.torrent");
    let mut cmd = shoal::command(["create".as_ref(), single.as_os_str(), "-o".as_ref(), torrent.as_os_str()]);
    cmd.args(["--private", "--piece-size", "65536", "--comment", "made by shoal-tests"]);
    cmd.args(["--tracker", &urls[0]]);
    let done = run("shoal_create_private", cmd, &td.logs(), Duration::from_secs(60));
    assert!(done.status.success(), "shoal create --private failed: {}", done.stderr);
    let ours = InfoHash::of_file(&torrent).hex();
    let info = shoal::info_json(&td, &torrent);
    let lt = peers::lt_info(&td, &torrent);
    assert_eq!(info["info_hash"], ours);
    assert_eq!(lt["info_hash"], ours);
    assert_eq!(peers::transmission_show_hash(&td, &torrent), ours);
    assert_eq!(info["private"], true);
    assert_eq!(lt["private"], true);
    assert_eq!(info["total_size"], 1_000_003);
    assert_eq!(info["piece_count"], 16);
    assert_eq!(shoal_files(&info), lt_files(&lt));
}

#[test]
fn shoal_info_reads_libtorrent_and_mktorrent_torrents() {
    let td = TestDir::new("info-foreign");
    let src = td.dir("src");
    let tree = data::tree(&src, "payload", &data::awkward_tree(), 808);
    let url = "http://127.0.0.1:1/announce".to_string();
    let lt_v1 = td.join("lt-v1.torrent");
    peers::lt_make(&td, &tree, &lt_v1, 16 * KIB, std::slice::from_ref(&url), LtKind::V1);
    let lt_hybrid = td.join("lt-hybrid.torrent");
    peers::lt_make(&td, &tree, &lt_hybrid, 16 * KIB, std::slice::from_ref(&url), LtKind::Hybrid);
    let mk = td.join("mktorrent.torrent");
    peers::mktorrent(&td, &tree, &mk, &url, 17);
    for torrent in [&lt_v1, &lt_hybrid, &mk] {
        let info = shoal::info_json(&td, torrent);
        let lt = peers::lt_info(&td, torrent);
        let what = torrent.display();
        assert_eq!(info["info_hash"], lt["info_hash"], "{what}");
        assert_eq!(info["info_hash"], InfoHash::of_file(torrent).hex(), "{what}");
        assert_eq!(info["name"], lt["name"], "{what}");
        assert_eq!(info["piece_length"], lt["piece_length"], "{what}");
        assert_eq!(info["piece_count"], lt["piece_count"], "{what}");
        assert_eq!(info["private"], lt["private"], "{what}");
        assert_eq!(shoal_trackers(&info), vec![url.clone()], "{what}");
        // Pad files are not user data: whether listed or not, the real files must match.
        let real: Vec<(String, u64)> = shoal_files(&info).into_iter().filter(|(p, _)| !data::is_pad_path(p)).collect();
        assert_eq!(real, lt_files(&lt), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Magnet links: metadata from libtorrent peers (BEP 9), found through a tracker, the link's
//    peers, `--peer`, or the DHT alone.

/// Upper bound for a magnet download in these tests (seconds when things work).
const MAGNET_TIMEOUT: Duration = Duration::from_secs(60);

/// A multi-file payload under `td/seed/payload` and a libtorrent v1 torrent of it with
/// `trackers`; returns (seed dir, payload dir, torrent, info-hash).
fn magnet_payload(td: &TestDir, trackers: &[String], seed: u64) -> (PathBuf, PathBuf, PathBuf, InfoHash) {
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), seed);
    let torrent = td.join("payload.torrent");
    peers::lt_make(td, &content, &torrent, 32 * KIB, trackers, LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    (src, content, torrent, hash)
}

/// Asserts that a finished `shoal download` of a magnet said it fetched the metadata.
fn assert_fetched_metadata(dl: &Proc, name: &str) {
    let log = dl.stderr();
    assert!(log.contains("fetching metadata"), "no `fetching metadata` in the log\n{}", dl.logs());
    let received = format!("metadata received: {name}");
    assert!(log.contains(&received), "no `{received}` in the log\n{}", dl.logs());
    assert_no_panic("shoal download", &log);
}

fn shoal_downloads_magnet_from_libtorrent_found_through_tracker(rt: Runtime) {
    let td = TestDir::new(&format!("magnet-tracker-{}", rt.name()));
    let tracker = Opentracker::start(&td, &[]);
    let (src, content, torrent, hash) = magnet_payload(&td, &[tracker.http_url()], 0x3a6);
    tracker.allow(hash);
    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    tracker.wait_peers(hash, 1, TIMEOUT);

    let link = magnet::Link::new(hash).name("a name until the metadata comes").tracker(&tracker.http_url());
    let out = td.dir("out");
    let mut dl = shoal::download_magnet(&td, rt, "shoal_download", &link.to_string(), &out, free_port(), &[], &[]);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
    assert_fetched_metadata(&dl, "payload");
}
on_each_runtime!(shoal_downloads_magnet_from_libtorrent_found_through_tracker);

/// `0,2,5-7`: the sorted indices as BEP 53 ranges.
fn select_only_spec(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { indices[i].to_string() } else { format!("{}-{}", indices[i], indices[j]) });
        i = j + 1;
    }
    parts.join(",")
}

fn shoal_downloads_only_the_files_a_magnet_selects(rt: Runtime) {
    let td = TestDir::new(&format!("magnet-select-{}", rt.name()));
    let tracker = Opentracker::start(&td, &[]);
    let (src, content, torrent, hash) = magnet_payload(&td, &[tracker.udp_url()], 0x50);
    tracker.allow(hash);
    let _seeder = peers::lt_seed(&td, &torrent, &src, free_port(), &[]);
    tracker.wait_peers(hash, 1, TIMEOUT);

    // File indices are positions in the info dictionary's file list, as libtorrent wrote it.
    let info = peers::lt_info(&td, &torrent);
    let paths: Vec<String> = info["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").strip_prefix("payload/").expect("under payload/").to_string())
        .collect();
    let wanted = ["a/b/c/deep.bin", "big/part2.dat", "big/zz-one", "with space/and-üñíçødé.txt", "a/one-byte"];
    // Files larger than two pieces: pieces shared with selected neighbours cannot fill them.
    let skipped = ["big/part1.dat", "a/b/c/d/e/f/deeper.bin"];
    let index = |p: &str| paths.iter().position(|x| x == p).unwrap_or_else(|| panic!("{p} not in {paths:?}"));
    let mut chosen: Vec<usize> = wanted.iter().map(|p| index(p)).collect();
    chosen.sort_unstable();
    let so = select_only_spec(&chosen);

    let link = magnet::Link::new(hash).hash_form(magnet::HashForm::Base32).tracker(&tracker.udp_url()).select_only(&so);
    let out = td.dir("out");
    let mut dl = shoal::download_magnet(&td, rt, "shoal_download", &link.to_string(), &out, free_port(), &[], &[]);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_fetched_metadata(&dl, "payload");
    assert!(dl.stderr().contains(" selected"), "the log does not say what was selected\n{}", dl.logs());
    for f in wanted {
        data::compare_trees(&content.join(f), &out.join("payload").join(f), Compare::default())
            .unwrap_or_else(|e| panic!("selected file {f} (so={so}): {e}"));
    }
    for f in skipped {
        let got = out.join("payload").join(f);
        assert!(
            data::compare_trees(&content.join(f), &got, Compare::default()).is_err(),
            "{f} was not selected (so={so}) but is complete"
        );
        // Wanted files are allocated in full when first written; skipped ones are not.
        let size = std::fs::metadata(content.join(f)).expect("source file").len();
        let allocated = std::fs::metadata(&got).map_or(0, |m| std::os::unix::fs::MetadataExt::blocks(&m) * 512);
        assert!(allocated < size, "{f} was not selected but takes {allocated} of its {size} bytes on disk");
    }
}
on_each_runtime!(shoal_downloads_only_the_files_a_magnet_selects);

/// No tracker: the seeder is named in the link (`x.pe`), then, for a second download, only on
/// the command line (`--peer`).
fn shoal_downloads_magnet_from_peer_in_link_or_on_command_line(rt: Runtime) {
    let td = TestDir::new(&format!("magnet-peer-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", 3 * MIB + 4321, 0x9e);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 64 * KIB, &[], LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    let port = free_port();
    let _seeder = peers::lt_seed(&td, &torrent, &src, port, &[]);

    let link = magnet::Link::new(hash).peer(loopback(port)).to_string();
    let out = td.dir("out-x.pe");
    let mut dl = shoal::download_magnet(&td, rt, "shoal_download_x.pe", &link, &out, free_port(), &[], &[]);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
    assert_fetched_metadata(&dl, "payload.bin");

    let link = magnet::Link::new(hash).to_string();
    let out = td.dir("out-peer");
    let peer = [loopback(port)];
    let mut dl = shoal::download_magnet(&td, rt, "shoal_download_peer", &link, &out, free_port(), &peer, &[]);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
    assert_fetched_metadata(&dl, "payload.bin");
}
on_each_runtime!(shoal_downloads_magnet_from_peer_in_link_or_on_command_line);

/// A magnet with the info-hash alone: Shoal's DHT knows `bootstrap` of the libtorrent sessions
/// (a seeder and two DHT-only nodes) and must find the seeder, the metadata and the data.
fn shoal_resolves_magnet_through_libtorrent_dht(
    rt: Runtime,
    test: &str,
    bootstrap: fn(&[SocketAddr]) -> Vec<SocketAddr>,
) {
    let td = TestDir::new(&format!("{test}-{}", rt.name()));
    let (src, content, torrent, hash) = magnet_payload(&td, &[], 0xd47);
    let seeder = peers::lt_dht_seed(&td, &torrent, &src, free_port(), &[free_port(), free_port()]);
    let link = magnet::Link::new(hash).to_string();
    let out = td.dir("out");
    let nodes = bootstrap(&seeder.nodes);
    let mut dl = shoal::download_magnet(&td, rt, "shoal_download", &link, &out, free_port(), &[], &nodes);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
    assert_fetched_metadata(&dl, "payload");
    drop(seeder);
}

fn shoal_resolves_trackerless_magnet_through_libtorrent_dht(rt: Runtime) {
    // One DHT-only node to start from: the seeder and the other node are learnt from the DHT.
    shoal_resolves_magnet_through_libtorrent_dht(rt, "magnet-dht", |nodes| nodes[1..2].to_vec());
}
on_each_runtime!(shoal_resolves_trackerless_magnet_through_libtorrent_dht);

/// Every node is given as a bootstrap node: they must still enter the routing table (they
/// once did not, and a DHT made only of them never bootstrapped).
#[test]
fn shoal_resolves_magnet_through_dht_whose_every_node_is_a_bootstrap_node() {
    shoal_resolves_magnet_through_libtorrent_dht(Runtime::Smol, "magnet-dht-all", |nodes| nodes.to_vec());
}

/// The libtorrent nodes know only a Shoal DHT node (a `shoal daemon` with no torrent), not each
/// other: they bootstrap from it, announce through it, and the downloader, which also knows
/// only that node, finds the seeder.
#[test]
fn libtorrent_dht_nodes_bootstrap_from_shoal() {
    let td = TestDir::new("magnet-dht-via-shoal");
    let (src, content, torrent, hash) = magnet_payload(&td, &[], 0xd48);
    let mut node = shoal_tests::daemon::Daemon::start(&td, "shoal_dht_node", &td.dir("node-state"), "k");
    let stderr = node.proc().stderr();
    let port: u16 = stderr
        .split("peers on 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("the daemon reports its peer port");
    let shoal_node = SocketAddr::from(([127, 0, 0, 1], port));
    let seeder = peers::lt_dht_seed_from(&td, &torrent, &src, free_port(), &[free_port(), free_port()], &[shoal_node]);
    let link = magnet::Link::new(hash).to_string();
    let out = td.dir("out");
    let mut dl =
        shoal::download_magnet(&td, Runtime::Smol, "shoal_download", &link, &out, free_port(), &[], &[shoal_node]);
    dl.expect_success(MAGNET_TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
    drop(seeder);
}

#[test]
fn malformed_magnet_links_are_rejected_with_a_clear_error() {
    let td = TestDir::new("hostile-magnets");
    let hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    let cases: Vec<(&str, String)> = vec![
        ("no-info-hash", "magnet:?dn=x&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce".into()),
        ("not-a-query", format!("magnet:xt=urn:btih:{hex}")),
        ("empty", "magnet:?".into()),
        ("short-hex", "magnet:?xt=urn:btih:c12fe1c06bba".into()),
        ("bad-hex-digit", format!("magnet:?xt=urn:btih:{}g", &hex[..39])),
        ("bad-base32", format!("magnet:?xt=urn:btih:{}1", "A".repeat(31))),
        ("two-hashes", format!("magnet:?xt=urn:btih:{hex}&xt=urn:btih:{}", "0".repeat(40))),
        ("v2-only", format!("magnet:?xt=urn:btmh:1220{}", "ab".repeat(32))),
        ("backwards-range", format!("magnet:?xt=urn:btih:{hex}&so=7-2")),
        ("huge-range", format!("magnet:?xt=urn:btih:{hex}&so=0-4294967295")),
        ("garbage-so", format!("magnet:?xt=urn:btih:{hex}&so=1,,x")),
    ];
    for (case, link) in &cases {
        let out = td.dir(&format!("out/{case}"));
        let port = free_port().to_string();
        let mut cmd = shoal_cmd(&["download".as_ref(), link.as_ref(), "-o".as_ref(), out.as_os_str()]);
        cmd.args(["--listen-port", &port]);
        let dl = run(&format!("download-{case}"), cmd, &td.logs(), Duration::from_secs(30));
        assert!(!dl.status.success(), "shoal download accepted {case}: {link}");
        assert_no_panic(&format!("download {case}"), &dl.stderr);
        let lines: Vec<&str> = dl.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{case}: want one error line, got:\n{}", dl.stderr);
        assert!(lines[0].contains("magnet"), "{case}: the error does not say what was wrong: {}", lines[0]);
        eprintln!("download {case}: {}", lines[0]);
        let written = data::list_files(&out).expect("list output dir");
        assert!(written.is_empty(), "{case}: files written for a bad link: {written:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Peer exchange (BEP 11): Shoal finds a seeder that only a libtorrent peer knows.

/// How long a download that depends on peer exchange may take: libtorrent sends its first
/// PEX message at once and then one a minute, so one minute and a half covers a late one.
const PEX_TIMEOUT: Duration = Duration::from_secs(100);

/// Starts `lt_seed.py` for `torrent` (data under `src`) on `port` with PEX off and `extra`
/// arguments, and waits until it seeds.
fn lt_seed_without_pex(td: &TestDir, torrent: &Path, src: &Path, port: u16, extra: &[&str]) -> Proc {
    let mut cmd = peers::script("lt_seed.py");
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(src);
    cmd.args(["--port", &port.to_string(), "--no-pex"]).args(extra);
    let mut seeder = Proc::spawn("lt_seed", cmd, &td.logs(), Duration::from_secs(3));
    seeder.wait_stdout("print ready", TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    seeder
}

/// Starts `lt_leech.py` for `torrent` into `out` on `port`, dialling `peer`, with `extra`
/// arguments.
fn lt_leech_to(td: &TestDir, torrent: &Path, out: &Path, port: u16, peer: u16, extra: &[&str]) -> Proc {
    let mut cmd = peers::script("lt_leech.py");
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(out);
    cmd.args(["--port", &port.to_string(), "--timeout", &TIMEOUT.as_secs().to_string()]);
    cmd.args(["--peer", &loopback(peer).to_string()]).args(extra);
    Proc::spawn("lt_leech", cmd, &td.logs(), Duration::from_secs(3))
}

/// `shoal download` of `torrent` into `out` on `port`, dialling `peer`, on loopback only.
fn shoal_download_from(td: &TestDir, rt: Runtime, torrent: &Path, out: &Path, port: u16, peer: u16) -> Proc {
    let mut cmd = shoal::command(["download"]);
    cmd.arg(torrent).arg("-o").arg(out);
    cmd.args(["--runtime", rt.name(), "--listen-port", &port.to_string()]);
    cmd.args(["--peer", &loopback(peer).to_string()]);
    cmd.env("SHOAL_LOCAL_ONLY", "1");
    Proc::spawn("shoal_download", cmd, &td.logs(), Duration::from_secs(5))
}

/// An 8 MiB payload under `seed/` and a tracker-less torrent of it.
fn pex_payload(td: &TestDir) -> (PathBuf, PathBuf, PathBuf) {
    let src = td.dir("seed");
    let content = Payload::Single(8 * MIB).write(&src, 1111);
    let torrent = td.join("payload.torrent");
    peers::lt_make(td, &content, &torrent, 64 * KIB, &[], LtKind::V1);
    (src, content, torrent)
}

/// Shoal knows only L, a libtorrent leecher that trickles (16 kB/s each way, so it stays a
/// leecher for minutes and could never serve 8 MiB in time). L dialled S, a libtorrent seeder
/// with PEX off and no tracker, so S never learns of Shoal: the download can only complete if
/// Shoal takes S's address from L's PEX and dials it.
fn shoal_finds_a_seeder_through_libtorrent_pex(rt: Runtime) {
    let td = TestDir::new(&format!("pex-lt-{}", rt.name()));
    let (src, content, torrent) = pex_payload(&td);
    let seeder_port = free_port();
    let _seeder = lt_seed_without_pex(&td, &torrent, &src, seeder_port, &[]);
    let leecher_port = free_port();
    let slow = ["--upload-rate", "16000", "--download-rate", "16000"];
    let mut leecher = lt_leech_to(&td, &torrent, &td.dir("out-lt"), leecher_port, seeder_port, &slow);
    leecher.wait_stderr("the libtorrent leecher to connect to the seeder", TIMEOUT, |s| s.contains(" peers=1"));

    let out = td.dir("out");
    let mut dl = shoal_download_from(&td, rt, &torrent, &out, free_port(), leecher_port);
    dl.expect_success(PEX_TIMEOUT);
    assert_same_tree(&content, &out.join(name_of(&content)), Compare::default());
    assert!(leecher.try_status().is_none(), "the libtorrent leecher finished, so it was not slow enough");
}
on_each_runtime!(shoal_finds_a_seeder_through_libtorrent_pex);

/// The other way round: L, a libtorrent leecher, knows only Shoal; Shoal dialled S, a
/// libtorrent seeder with PEX off and no tracker, which trickles (so Shoal stays a leecher,
/// connected to it). About a minute after L connects, Shoal's PEX message names S, and L dials
/// it: libtorrent takes our message (it ignores `added` without a matching `added.f`, and
/// disconnects a peer whose PEX is malformed or too frequent). One runtime: the messages come
/// from the core.
#[test]
fn libtorrent_finds_a_seeder_through_shoal_pex() {
    let td = TestDir::new("pex-shoal-to-lt");
    let (src, _, torrent) = pex_payload(&td);
    let seeder_port = free_port();
    let _seeder = lt_seed_without_pex(&td, &torrent, &src, seeder_port, &["--upload-rate", "16000"]);
    let shoal_port = free_port();
    let mut dl = shoal_download_from(&td, Runtime::Smol, &torrent, &td.dir("out"), shoal_port, seeder_port);
    dl.wait_stderr("shoal to listen", TIMEOUT, |s| s.contains("listening on"));

    let mut leecher = lt_leech_to(&td, &torrent, &td.dir("out-lt"), free_port(), shoal_port, &[]);
    leecher.wait_stderr("the libtorrent leecher to connect to Shoal", TIMEOUT, |s| s.contains(" peers=1"));
    leecher.wait_stderr("the libtorrent leecher to find the seeder through Shoal", PEX_TIMEOUT, |s| {
        s.contains(" peers=2")
    });
    assert!(dl.try_status().is_none(), "shoal finished, so the seeder was not slow enough");
}
