//! The `shoal` command line as a user meets it: the progress it shows, how it ends (broken
//! pipes, Ctrl-C, SIGTERM), what `seed` refuses and reports, the magnet links of `info` and
//! `create`, the daemon's peer port and `RUST_LOG` (issue #14, findings 15–17).
//!
//! Everything runs on loopback with `SHOAL_LOCAL_ONLY=1`; waits are on output and exit, each
//! with a deadline.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_tests::peers;
use shoal_tests::proc::run;
use shoal_tests::shoal;
use shoal_tests::wait::loopback;
use shoal_tests::{data, free_port, InfoHash, Proc, TestDir};

/// Upper bound for a transfer or a start-up in these tests.
const TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopped `shoal` gets to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

const MIB: u64 = 1024 * 1024;

/// A payload file under `<td>/seed/` and its torrent made by `shoal create` (no tracker
/// unless given), `piece_size` bytes a piece.
struct Made {
    src: PathBuf,
    content: PathBuf,
    torrent: PathBuf,
}

fn make(td: &TestDir, size: u64, piece_size: u64, trackers: &[String]) -> Made {
    let src = td.dir("seed");
    let content = data::single_file(&src, "payload.bin", size, size ^ 0xc11);
    let torrent = td.join("payload.torrent");
    shoal::create(td, &content, &torrent, trackers, piece_size);
    Made { src, content, torrent }
}

/// A libtorrent seeder of `made` on a free port, uploading at most `rate` bytes/s.
fn lt_seeder(td: &TestDir, made: &Made, rate: u64) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = peers::script("lt_seed.py");
    cmd.arg("--torrent").arg(&made.torrent).arg("--save-path").arg(&made.src);
    cmd.args(["--port", &port.to_string(), "--upload-rate", &rate.to_string()]);
    let mut p = Proc::spawn("lt_seed", cmd, &td.logs(), Duration::from_secs(3));
    p.wait_stdout("print ready", TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    (p, port)
}

/// `shoal download TORRENT -o OUT --peer 127.0.0.1:PEER` (stderr to a file: not a terminal).
fn download(td: &TestDir, torrent: &Path, out: &Path, peer: Option<u16>) -> Proc {
    let mut cmd = shoal::command(["download"]);
    cmd.arg(torrent).arg("-o").arg(out).args(["--listen-port", &free_port().to_string()]);
    if let Some(p) = peer {
        cmd.args(["--peer", &loopback(p).to_string()]);
    }
    cmd.env("RUST_BACKTRACE", "1");
    Proc::spawn("shoal_download", cmd, &td.logs(), Duration::from_secs(5))
}

/// The share verified (percent) in each periodic progress line of plain output, in order:
/// the lines that start with the torrent's name and say `downloading`.
fn progress_percents(stderr: &str, name: &str) -> Vec<f64> {
    let prefix = format!("{name}: ");
    stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains("downloading"))
        .filter_map(|l| {
            let word = l.split_whitespace().find(|w| w.trim_start_matches('(').trim_end_matches(',').ends_with('%'))?;
            word.trim_start_matches('(').trim_end_matches(',').trim_end_matches('%').parse().ok()
        })
        .collect()
}

/// Finding 15: through a whole download at 3 MB/s, piped output gets a line every 5 s, and
/// the share in them grows. (On main the 1 s redraw timer was restarted by every event, and at
/// this rate events come faster than that: the display froze.)
#[test]
fn piped_download_prints_growing_progress_lines() {
    let td = TestDir::new("cli-progress");
    // 48 MiB at 3 MB/s: about 17 s, so lines at about 1, 6, 11 and 16 s.
    let size = 48 * MIB;
    let made = make(&td, size, 256 * 1024, &[]);
    let (_seeder, port) = lt_seeder(&td, &made, 3_000_000);
    let out = td.dir("out");
    let mut dl = download(&td, &made.torrent, &out, Some(port));
    let growing = |s: &str| {
        let partial: Vec<f64> =
            progress_percents(s, "payload.bin").into_iter().filter(|&p| p > 0.0 && p < 100.0).collect();
        partial.len() >= 2 && partial.windows(2).all(|w| w[0] < w[1])
    };
    dl.wait_stderr("print two progress lines with a growing share", TIMEOUT, growing);
    dl.expect_success(TIMEOUT);
    let stderr = dl.stderr();
    eprintln!("progress lines: {:?}", progress_percents(&stderr, "payload.bin"));
    // The lines give the exact byte counts too, for scripts.
    let line = stderr.lines().find(|l| l.contains(&format!(" of {size} bytes)"))).unwrap_or_else(|| panic!("{stderr}"));
    eprintln!("{line}");
    data::assert_same_tree(&made.content, &out.join("payload.bin"), data::Compare::default());
}

/// Runs `shoal ARGS` with its stdout a pipe whose reader is already gone, as in
/// `shoal info x | head` once head has exited.
fn run_into_closed_pipe(args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = shoal::command(args);
    cmd.env("RUST_BACKTRACE", "1").stdout(writer).stderr(std::process::Stdio::piped());
    let out = cmd.output().expect("run shoal");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Finding 16: `shoal info … | head` ends quietly with status 0 when the reader goes away
/// (main panicked: "failed printing to stdout: Broken pipe", exit 101).
#[test]
fn info_into_a_closed_pipe_ends_quietly() {
    let td = TestDir::new("cli-epipe");
    let made = make(&td, 100_000, 16 * 1024, &[]);
    for json in [false, true] {
        let mut args = vec!["info".as_ref(), made.torrent.as_os_str()];
        if json {
            args.push("--json".as_ref());
        }
        let (status, stderr) = run_into_closed_pipe(&args);
        assert!(status.success(), "info (json: {json}) into a closed pipe: {status}, stderr:\n{stderr}");
        assert!(stderr.trim().is_empty(), "info (json: {json}) printed on stderr:\n{stderr}");
    }
    let again = td.join("again.torrent");
    let (status, stderr) =
        run_into_closed_pipe(&["create".as_ref(), made.content.as_os_str(), "-o".as_ref(), again.as_os_str()]);
    assert!(status.success() && stderr.trim().is_empty(), "create into a closed pipe: {status}\n{stderr}");
    assert!(again.is_file(), "create wrote no torrent");
}

/// Starts a download that cannot progress (no peer), waits until it runs, and stops it with
/// `signal`; returns its exit status and stderr.
fn stop_idle_download(name: &str, signal: i32) -> (std::process::ExitStatus, String) {
    let td = TestDir::new(name);
    let made = make(&td, 1_000_000, 16 * 1024, &[]);
    let out = td.dir("out");
    let mut dl = download(&td, &made.torrent, &out, None);
    dl.wait_stderr("listen", TIMEOUT, |s| s.contains("listening on"));
    dl.signal(signal);
    let status = dl.wait_exit(STOP_TIMEOUT).unwrap_or_else(|e| panic!("{e}\n{}", dl.logs()));
    (status, dl.stderr())
}

/// Finding 16: Ctrl-C (SIGINT) or SIGTERM during a download is an interruption, exit 130, not
/// an error with exit 1.
#[test]
fn interrupted_download_exits_130() {
    for (name, signal) in [("cli-sigint", libc::SIGINT), ("cli-sigterm", libc::SIGTERM)] {
        let (status, stderr) = stop_idle_download(name, signal);
        assert_eq!(status.code(), Some(130), "{name}: {status}, stderr:\n{stderr}");
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        assert!(last.contains("interrupted") && !last.contains("error"), "{name}: last line {last:?}\n{stderr}");
        assert!(status.signal().is_none());
    }
}

/// Finding 16: `seed` on a directory that does not hold the data refuses at once, naming the
/// path it looked for, and writes nothing (main started downloading into it).
#[test]
fn seed_without_the_data_refuses_naming_the_path() {
    let td = TestDir::new("cli-seed-nodata");
    let made = make(&td, 1_000_000, 16 * 1024, &[]);
    let empty = td.dir("empty");
    let mut cmd = shoal::command(["seed"]);
    cmd.arg(&made.torrent).arg(&empty).args(["--listen-port", &free_port().to_string()]);
    let mut seed = Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::ZERO);
    let status = seed.wait_exit(STOP_TIMEOUT).unwrap_or_else(|e| panic!("seed did not refuse: {e}\n{}", seed.logs()));
    assert!(!status.success(), "seed accepted a directory without the data\n{}", seed.logs());
    let expected = empty.join("payload.bin").display().to_string();
    assert!(seed.stderr().contains(&expected), "the error does not name {expected}:\n{}", seed.stderr());
    assert_eq!(data::list_files(&empty).expect("list"), Vec::<String>::new(), "seed wrote into the directory");
}

/// The choice for partial data: it is checked, and what verifies is seeded (the rest would be
/// fetched from peers); stopping it is its normal end (exit 0).
#[test]
fn seed_with_partial_data_checks_it_and_runs() {
    let td = TestDir::new("cli-seed-partial");
    let made = make(&td, 1_000_000, 16 * 1024, &[]);
    let dir = td.dir("partial");
    let bytes = std::fs::read(&made.content).expect("read payload");
    std::fs::write(dir.join("payload.bin"), &bytes[..300_000]).expect("write partial payload");
    let mut cmd = shoal::command(["seed"]);
    cmd.arg(&made.torrent).arg(&dir).args(["--listen-port", &free_port().to_string()]);
    let mut seed = Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::from_secs(5));
    // 300,000 bytes hold 18 whole 16 KiB pieces of the 62.
    seed.wait_stderr("check the data", TIMEOUT, |s| s.contains("checked existing data: 18 of 62 pieces valid"));
    seed.terminate_expect_success(STOP_TIMEOUT);
}

/// Finding 16: `seed` reports what it gave when it stops: bytes uploaded, peers served, time.
#[test]
fn seed_prints_its_totals_when_stopped() {
    let td = TestDir::new("cli-seed-totals");
    let size = 6 * MIB;
    let made = make(&td, size, 64 * 1024, &[]);
    let port = free_port();
    let mut cmd = shoal::command(["seed"]);
    cmd.arg(&made.torrent).arg(&made.src).args(["--listen-port", &port.to_string()]);
    let mut seed = Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::from_secs(5));
    seed.wait_stderr("check its data", TIMEOUT, |s| s.contains("checked existing data"));
    // A leecher slow enough (2 MB/s, about 3 s) to be seen connected by the seeder's polls.
    let out = td.dir("out");
    let mut leech = peers::script("lt_leech.py");
    leech.arg("--torrent").arg(&made.torrent).arg("--save-path").arg(&out);
    leech.args(["--port", &free_port().to_string(), "--timeout", &TIMEOUT.as_secs().to_string()]);
    leech.args(["--peer", &loopback(port).to_string(), "--download-rate", "2000000"]);
    let mut leech = Proc::spawn("lt_leech", leech, &td.logs(), Duration::from_secs(3));
    leech.expect_success(TIMEOUT);
    seed.terminate_expect_success(STOP_TIMEOUT);
    let stderr = seed.stderr();
    let totals = stderr.lines().find(|l| l.contains("uploaded")).unwrap_or_else(|| panic!("no totals:\n{stderr}"));
    eprintln!("{totals}");
    let uploaded: u64 = totals
        .split('(')
        .nth(1)
        .and_then(|r| r.split(" bytes)").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {totals:?}"));
    assert!(uploaded >= size, "uploaded {uploaded} < {size}: {totals}");
    assert!(totals.contains(" to 1 peer "), "peers served: {totals}");
    assert!(totals.contains(" of seeding"), "time: {totals}");
}

/// Finding 16: `create`, `info` and `info --json` give the torrent's magnet link with its
/// info-hash, name and trackers.
#[test]
fn info_and_create_print_the_magnet_link() {
    let td = TestDir::new("cli-magnet");
    let trackers = ["http://127.0.0.1:1/announce".to_string(), "udp://127.0.0.1:2".to_string()];
    let src = td.dir("seed");
    let content = data::single_file(&src, "my file.bin", 100_000, 7);
    let torrent = td.join("t.torrent");
    let mut cmd = shoal::command(["create"]);
    cmd.arg(&content).arg("-o").arg(&torrent);
    for t in &trackers {
        cmd.args(["--tracker", t]);
    }
    let created = run("shoal_create", cmd, &td.logs(), TIMEOUT);
    assert!(created.status.success(), "{}", created.stderr);
    let hash = InfoHash::of_file(&torrent).hex();
    let expected = format!(
        "magnet:?xt=urn:btih:{hash}&dn=my%20file.bin&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce&tr=udp%3A%2F%2F127.0.0.1%3A2"
    );
    let magnet_of = |text: &str| text.split_whitespace().find(|w| w.starts_with("magnet:?")).map(str::to_string);
    assert_eq!(magnet_of(&created.stdout), Some(expected.clone()), "create printed:\n{}", created.stdout);
    let info = shoal::run_args(&td, "shoal_info", ["info".as_ref(), torrent.as_os_str()]);
    assert!(info.status.success(), "{}", info.stderr);
    assert_eq!(magnet_of(&info.stdout), Some(expected.clone()), "info printed:\n{}", info.stdout);
    assert_eq!(shoal::info_json(&td, &torrent)["magnet"], serde_json::json!(expected));
}

/// A `shoal daemon` on `state` with extra arguments and environment; returns it once it
/// reported its peer port (`peers on 127.0.0.1:PORT`), and that port.
fn daemon(td: &TestDir, state: &Path, args: &[&str], env: &[(&str, &str)]) -> (Proc, u16) {
    let mut cmd = shoal::command(["daemon"]);
    cmd.arg("--state-dir").arg(state).args(["--http-port", "0", "--api-key", "k"]).args(args);
    for var in ["TSTATEDIR", "CORE_API_PORT", "CORE_API_KEY", "SHOAL_LISTEN_PORT", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut d = Proc::spawn("shoal_daemon", cmd, &td.logs(), Duration::from_secs(10));
    let port_in = |s: &str| -> Option<u16> {
        let rest = s.split("peers on 127.0.0.1:").nth(1)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (digits.len() < rest.len()).then(|| digits.parse().ok()).flatten()
    };
    d.wait_stderr("report its peer port", TIMEOUT, |s| port_in(s).is_some() && s.contains("REST API on"));
    let port = port_in(&d.stderr()).expect("seen");
    (d, port)
}

/// Finding 17: with 6881 taken, the free port the daemon picks is stored as
/// `[libtorrent] port` and used again at the next start (main picked a new one every time).
#[test]
fn daemon_keeps_its_peer_port_across_restarts() {
    let td = TestDir::new("cli-daemon-port");
    // Hold 6881 (if someone else holds it already, it is taken all the same).
    let _holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 6881));
    let state = td.dir("state");
    let (mut first, port) = daemon(&td, &state, &[], &[]);
    assert_ne!(port, 6881);
    first.terminate_expect_success(STOP_TIMEOUT);
    let conf = std::fs::read_to_string(state.join("triblerd.conf")).expect("triblerd.conf");
    assert!(conf.contains(&format!("port={port}")), "port {port} not stored:\n{conf}");
    let (mut second, again) = daemon(&td, &state, &[], &[]);
    assert_eq!(again, port, "the second start chose another peer port");
    second.terminate_expect_success(STOP_TIMEOUT);
}

/// Finding 17: `--listen-port` (and `SHOAL_LISTEN_PORT`) choose the peer port.
#[test]
fn daemon_listen_port_flag_and_environment() {
    let td = TestDir::new("cli-daemon-listen-port");
    let (flag, env) = (free_port(), free_port());
    let (mut d, port) = daemon(&td, &td.dir("a"), &["--listen-port", &flag.to_string()], &[]);
    assert_eq!(port, flag);
    d.terminate_expect_success(STOP_TIMEOUT);
    let (mut d, port) = daemon(&td, &td.dir("b"), &[], &[("SHOAL_LISTEN_PORT", &env.to_string())]);
    assert_eq!(port, env);
    d.terminate_expect_success(STOP_TIMEOUT);
    // A port given explicitly is not silently replaced: taken, it is an error naming it.
    let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    let mut cmd = shoal::command(["daemon"]);
    cmd.arg("--state-dir").arg(td.dir("c")).args(["--http-port", "0", "--api-key", "k"]);
    cmd.args(["--listen-port", &taken.to_string()]);
    let done = run("shoal_daemon_taken", cmd, &td.logs(), TIMEOUT);
    assert!(!done.status.success(), "started on a taken port:\n{}", done.stderr);
    assert!(done.stderr.contains(&taken.to_string()), "the error does not name the port:\n{}", done.stderr);
}

/// Finding 17: `RUST_LOG` is read: `debug` adds debug lines the default (`info`) leaves out.
#[test]
fn daemon_follows_rust_log() {
    let td = TestDir::new("cli-rust-log");
    let (mut quiet, _) = daemon(&td, &td.dir("a"), &[], &[]);
    quiet.terminate_expect_success(STOP_TIMEOUT);
    let (mut loud, _) = daemon(&td, &td.dir("b"), &[], &[("RUST_LOG", "debug")]);
    loud.terminate_expect_success(STOP_TIMEOUT);
    let debug_lines = |s: &str| s.lines().filter(|l| l.contains("DEBUG")).count();
    assert_eq!(debug_lines(&quiet.stderr()), 0, "debug lines without RUST_LOG:\n{}", quiet.stderr());
    let loud_log = loud.stderr();
    assert!(debug_lines(&loud_log) > 0, "no debug line with RUST_LOG=debug:\n{loud_log}");
    assert!(loud_log.contains("peer port chosen"), "{loud_log}");
    // The lines scripts wait on keep their words.
    assert!(loud_log.contains("REST API on http://127.0.0.1:"), "{loud_log}");
}

/// The help texts: no subcommand is announced as coming "later", each has its own help.
#[test]
fn help_texts_are_current() {
    let td = TestDir::new("cli-help");
    for sub in ["", "download", "seed", "create", "info", "daemon"] {
        let mut cmd = shoal::command(sub.split_whitespace());
        cmd.arg("--help");
        let out = run(&format!("help-{}", if sub.is_empty() { "shoal" } else { sub }), cmd, &td.logs(), TIMEOUT);
        assert!(out.status.success(), "{sub} --help: {}", out.stderr);
        assert!(!out.stdout.contains("later"), "{sub} --help:\n{}", out.stdout);
    }
    let top = shoal::run_args(&td, "help", ["--help"]).stdout;
    for sub in ["download", "seed", "create", "info", "daemon"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(sub)), "{sub} missing from --help:\n{top}");
    }
    let daemon = shoal::run_args(&td, "help-daemon-2", ["daemon", "--help"]).stdout;
    assert!(daemon.contains("--listen-port"), "{daemon}");
}
