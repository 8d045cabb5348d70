//! uTP (BEP 29) against python-libtorrent with TCP switched off (`enable_outgoing_tcp` and
//! `enable_incoming_tcp` false, uTP on): whatever moves between the two moves over uTP, on
//! Shoal's side the listen port's UDP socket. Both directions, byte-exact, on both runtimes;
//! then the same with encryption forced on both sides as well (libtorrent RC4 only, Shoal
//! `--encryption forced`): MSE over uTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_tests::data::{self, Compare};
use shoal_tests::on_each_runtime;
use shoal_tests::peers::{self, LtKind};
use shoal_tests::shoal::{self, Runtime};
use shoal_tests::wait::loopback;
use shoal_tests::{assert_same_tree, free_port, Proc, TestDir};

/// Upper bound for a transfer (seconds when things work).
const TIMEOUT: Duration = Duration::from_secs(120);

/// libtorrent's settings for uTP only (read by `scripts/ltcommon.py`).
const UTP_ONLY: &str = r#"{"enable_outgoing_tcp": false, "enable_incoming_tcp": false,
    "enable_outgoing_utp": true, "enable_incoming_utp": true}"#;

/// uTP only, and encrypted connections with an RC4 payload stream only (`pe_forced` = 0,
/// `pe_rc4` = 2): both forced at once.
const UTP_ONLY_FORCED_RC4: &str = r#"{"enable_outgoing_tcp": false, "enable_incoming_tcp": false,
    "enable_outgoing_utp": true, "enable_incoming_utp": true,
    "out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2, "prefer_rc4": true}"#;

/// A 6 MiB payload (a few hundred uTP packets' worth of windows) and a tracker-less torrent.
fn payload(td: &TestDir, seed: u64) -> (PathBuf, PathBuf, PathBuf) {
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", 6 * 1024 * 1024 + 12_345, seed);
    let torrent = td.join("payload.torrent");
    peers::lt_make(td, &content, &torrent, 64 * 1024, &[], LtKind::V1);
    (src, content, torrent)
}

/// A libtorrent seeder on `port` with `settings` (uTP only at least), that waits for peers.
fn lt_seed_utp(td: &TestDir, torrent: &Path, src: &Path, port: u16, settings: &str) -> Proc {
    let mut cmd = peers::script("lt_seed.py");
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(src);
    cmd.args(["--port", &port.to_string(), "--no-wait-tracker"]);
    cmd.env("LT_SETTINGS", settings);
    let mut seeder = Proc::spawn("lt_seed", cmd, &td.logs(), Duration::from_secs(3));
    seeder.wait_stdout("print ready", TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    seeder
}

/// A libtorrent leecher of `torrent` into `out` with `settings`, given only Shoal's address.
fn lt_leech_utp(td: &TestDir, torrent: &Path, out: &Path, shoal_port: u16, settings: &str) -> Proc {
    let mut cmd = peers::script("lt_leech.py");
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(out);
    cmd.args(["--port", &free_port().to_string(), "--timeout", &TIMEOUT.as_secs().to_string()]);
    cmd.args(["--peer", &loopback(shoal_port).to_string()]);
    cmd.env("LT_SETTINGS", settings);
    Proc::spawn("lt_leech", cmd, &td.logs(), Duration::from_secs(3))
}

fn shoal_downloads_from_libtorrent_over_utp(rt: Runtime) {
    let td = TestDir::new(&format!("utp-lt-to-shoal-{}", rt.name()));
    let (src, content, torrent) = payload(&td, 29);
    let lt_port = free_port();
    let _seeder = lt_seed_utp(&td, &torrent, &src, lt_port, UTP_ONLY);
    let out = td.dir("out");
    let mut dl = shoal::download(&td, rt, "shoal_download", &torrent, &out, free_port(), &[loopback(lt_port)]);
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}

fn libtorrent_downloads_from_shoal_over_utp(rt: Runtime) {
    let td = TestDir::new(&format!("utp-shoal-to-lt-{}", rt.name()));
    let (src, content, torrent) = payload(&td, 30);
    let shoal_port = free_port();
    let _seeder = shoal::seed(&td, rt, &torrent, &src, shoal_port, &[]);
    let out = td.dir("out");
    let mut leech = lt_leech_utp(&td, &torrent, &out, shoal_port, UTP_ONLY);
    leech.expect_success(TIMEOUT + Duration::from_secs(10));
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}

on_each_runtime!(shoal_downloads_from_libtorrent_over_utp, libtorrent_downloads_from_shoal_over_utp);

/// Shoal with encryption forced (it refuses a plaintext peer) and RC4 the only payload level.
fn forced(mut cmd: std::process::Command) -> std::process::Command {
    cmd.args(["--encryption", "forced", "--encryption-level", "rc4"]);
    cmd
}

fn shoal_downloads_from_forced_libtorrent_over_utp(rt: Runtime) {
    let td = TestDir::new(&format!("utp-enc-lt-to-shoal-{}", rt.name()));
    let (src, content, torrent) = payload(&td, 31);
    let lt_port = free_port();
    let _seeder = lt_seed_utp(&td, &torrent, &src, lt_port, UTP_ONLY_FORCED_RC4);
    let out = td.dir("out");
    let cmd = shoal::download_command(rt, torrent.as_os_str(), &out, free_port(), &[loopback(lt_port)]);
    let mut dl = Proc::spawn("shoal_download", forced(cmd), &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}

fn forced_libtorrent_downloads_from_shoal_over_utp(rt: Runtime) {
    let td = TestDir::new(&format!("utp-enc-shoal-to-lt-{}", rt.name()));
    let (src, content, torrent) = payload(&td, 32);
    let shoal_port = free_port();
    let mut cmd = shoal::command(["seed"]);
    cmd.arg(&torrent).arg(&src).args(["--runtime", rt.name(), "--listen-port", &shoal_port.to_string()]);
    let _seeder = Proc::spawn("shoal_seed", forced(cmd), &td.logs(), Duration::from_secs(5));
    let out = td.dir("out");
    let mut leech = lt_leech_utp(&td, &torrent, &out, shoal_port, UTP_ONLY_FORCED_RC4);
    leech.expect_success(TIMEOUT + Duration::from_secs(10));
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}

on_each_runtime!(shoal_downloads_from_forced_libtorrent_over_utp, forced_libtorrent_downloads_from_shoal_over_utp);
