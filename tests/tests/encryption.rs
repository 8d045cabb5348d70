//! Message Stream Encryption (MSE/PE) against real peers on loopback: python-libtorrent with
//! encryption forced and RC4 the only level, transmission-cli with encryption required and
//! aria2 with `--bt-require-crypto`, each talking to `shoal` run with `--encryption forced`
//! (a peer that refused or garbled the encrypted handshake would never get a byte).
//!
//! Needs the binary (`SHOAL_BIN`) and python3-libtorrent, opentracker, transmission-cli and
//! aria2 (`scripts/test.sh` installs them).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use shoal_tests::data::{self, Compare};
use shoal_tests::on_each_runtime;
use shoal_tests::peers::{self, LtKind, Transmission};
use shoal_tests::shoal::{self, Runtime};
use shoal_tests::wait::wait_for;
use shoal_tests::{assert_same_tree, free_port, InfoHash, Opentracker, Proc, TestDir};

/// Upper bound for any transfer here (seconds when things work).
const TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopped seeder gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// libtorrent refusing anything but encrypted connections with an RC4 payload stream
/// (`pe_forced` = 0, `pe_rc4` = 2).
const LT_FORCED_RC4: &str = r#"{"out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2, "prefer_rc4": true}"#;

/// A `shoal` subcommand with `--encryption forced`, the runtime and the listen port.
fn forced_shoal(sub: &str, rt: Runtime, port: u16, peers: &[SocketAddr]) -> std::process::Command {
    let mut cmd = shoal::command([sub]);
    cmd.args(["--encryption", "forced", "--runtime", rt.name(), "--listen-port", &port.to_string()]);
    for p in peers {
        cmd.arg("--peer").arg(p.to_string());
    }
    cmd
}

/// `shoal seed --encryption forced`, once the tracker lists it as a seeder.
fn forced_seed(
    td: &TestDir,
    rt: Runtime,
    tracker: &Opentracker,
    torrent: &Path,
    src: &Path,
    dial: &[SocketAddr],
) -> Proc {
    let mut cmd = forced_shoal("seed", rt, free_port(), dial);
    cmd.arg(torrent).arg(src);
    let mut seeder = Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::from_secs(5));
    let hash = InfoHash::of_file(torrent);
    let listed = wait_for("shoal seed to be listed by the tracker", TIMEOUT, || {
        if let Some(status) = seeder.try_status() {
            return Some(Err(format!("shoal seed exited with {status}")));
        }
        (tracker.scrape(hash).ok()?.0 >= 1).then_some(Ok(()))
    });
    match listed {
        Ok(Ok(())) => seeder,
        Ok(Err(e)) | Err(e) => panic!("{e}\n{}", seeder.logs()),
    }
}

fn shoal_downloads_from_forced_libtorrent(rt: Runtime) {
    let td = TestDir::new(&format!("enc-lt-to-shoal-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 17);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    peers::lt_make(&td, &content, &torrent, 32 * 1024, &[tracker.http_url()], LtKind::V1);
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);
    let mut seeder = peers::lt_seed_with(&td, &torrent, &src, free_port(), &[], LT_FORCED_RC4);
    tracker.wait_peers(hash, 1, TIMEOUT);
    let out = td.dir("out");
    let mut cmd = forced_shoal("download", rt, free_port(), &[]);
    cmd.arg(&torrent).arg("-o").arg(&out);
    let mut dl = Proc::spawn("shoal_download", cmd, &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload"), Compare::default());
    seeder.terminate(STOP_TIMEOUT);
}
on_each_runtime!(shoal_downloads_from_forced_libtorrent);

fn forced_libtorrent_downloads_from_shoal(rt: Runtime) {
    let td = TestDir::new(&format!("enc-shoal-to-lt-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", 9 * 1024 * 1024 + 7, 23);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[tracker.http_url()], 1 << 16);
    tracker.allow(InfoHash::of_file(&torrent));
    let mut seeder = forced_seed(&td, rt, &tracker, &torrent, &src, &[]);
    let out = td.dir("out");
    let mut leech = peers::lt_leech_with(&td, &torrent, &out, (free_port(), &[]), TIMEOUT, LT_FORCED_RC4);
    leech.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(forced_libtorrent_downloads_from_shoal);

fn transmission_and_aria2_requiring_encryption_download_from_shoal(rt: Runtime) {
    let td = TestDir::new(&format!("enc-shoal-to-tr-aria2-{}", rt.name()));
    let src = td.dir("seed");
    let content = data::tree(&src, "payload", &data::awkward_tree(), 29);
    let tracker = Opentracker::start(&td, &[]);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[tracker.http_url()], 1 << 15);
    tracker.allow(InfoHash::of_file(&torrent));
    let (tr_out, aria_out) = (td.dir("out-tr"), td.dir("out-aria2"));
    // transmission drops loopback peers from the tracker: the seeder dials it.
    let mut trans = Transmission::start_with(&td, &torrent, &tr_out, free_port(), true);
    let mut seeder = forced_seed(&td, rt, &tracker, &torrent, &src, &[trans.addr()]);
    let crypto = ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"];
    let mut aria = peers::aria2_with(&td, &torrent, &aria_out, free_port(), &crypto);
    aria.expect_success(TIMEOUT);
    trans.wait_done(TIMEOUT);
    assert_same_tree(&content, &aria_out.join("payload"), Compare::default());
    let lenient = Compare { missing_empty_ok: true, ..Compare::default() };
    assert_same_tree(&content, &tr_out.join("payload"), lenient);
    seeder.terminate_expect_success(STOP_TIMEOUT);
}
on_each_runtime!(transmission_and_aria2_requiring_encryption_download_from_shoal);
