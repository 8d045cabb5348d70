//! Real BitTorrent programs on loopback: python3-libtorrent (through the scripts in
//! `tests/scripts/`), transmission-cli, aria2c, mktorrent, and a scripted corrupt peer.
//!
//! Every process here listens on 127.0.0.1 and has DHT, local discovery, uTP and port mapping
//! off (PEX too, but for libtorrent's, which names only its loopback peers): tests must never
//! send a packet off the machine. The one exception, [`lt_dht_seed`], turns the DHT on with no
//! bootstrap router: its only nodes are its own sessions on 127.0.0.1.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{run_ok, Proc};
use crate::wait::{wait_for, wait_port_open};
use crate::workdir::TestDir;

/// How long a libtorrent seeder or the corrupt peer may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the libtorrent DHT seeder may take until another node stored its announce.
const DHT_READY_TIMEOUT: Duration = Duration::from_secs(40);

/// How long a short tool run (torrent creation, inspection) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The Python with python3-libtorrent: `SHOAL_PYTHON`, else Debian's `/usr/bin/python3`
/// (not a pyenv one, which lacks the module).
pub fn python() -> PathBuf {
    std::env::var_os("SHOAL_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// A command running `tests/scripts/<script>` with the libtorrent Python.
pub fn script(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(crate::workdir::package_dir().join("scripts").join(script));
    // Keep the source tree clean and the logs timely.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd.env("PYTHONUNBUFFERED", "1");
    cmd
}

fn add_peers(cmd: &mut Command, peers: &[SocketAddr]) {
    for p in peers {
        cmd.arg("--peer").arg(p.to_string());
    }
}

/// Starts a libtorrent seeder of `torrent` with data under `save_path`, listening on `port`
/// and connecting out to `peers`. Returns once it seeds and its tracker (if any) has answered.
pub fn lt_seed(td: &TestDir, torrent: &Path, save_path: &Path, port: u16, peers: &[SocketAddr]) -> Proc {
    lt_seed_with(td, torrent, save_path, port, peers, "{}")
}

/// [`lt_seed`] with `settings` (a JSON object of libtorrent settings, `LT_SETTINGS`) over the
/// loopback ones: forced encryption, for one.
pub fn lt_seed_with(
    td: &TestDir,
    torrent: &Path,
    save_path: &Path,
    port: u16,
    peers: &[SocketAddr],
    settings: &str,
) -> Proc {
    let command = || {
        let mut cmd = script("lt_seed.py");
        cmd.env("LT_SETTINGS", settings);
        cmd.arg("--torrent").arg(torrent);
        cmd.arg("--save-path").arg(save_path);
        cmd.args(["--port", &port.to_string()]);
        add_peers(&mut cmd, peers);
        cmd
    };
    spawn_until_ready(td, "lt_seed", command, "print ready", READY_TIMEOUT, |s| s.lines().any(|l| l == "ready"))
}

/// Spawns `command()` as `name` and waits until its stdout satisfies `ready`.
///
/// python-libtorrent 2.0.8 has died with SIGSEGV while starting up, before it printed or
/// logged anything and before any Shoal process existed (in CI, on a loaded machine: once with
/// three DHT sessions in one process, once checking a 64 MiB seed). That is a crash inside
/// libtorrent, not what the tests check, so a SIGSEGV before `ready` gets two more attempts.
/// The retry is printed, and any other early exit fails the test.
fn spawn_until_ready(
    td: &TestDir,
    name: &str,
    command: impl Fn() -> Command,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&str) -> bool,
) -> Proc {
    let mut attempt = 1;
    loop {
        let mut proc = Proc::spawn(name, command(), &td.logs(), Duration::from_secs(3));
        match proc.wait_stdout_or_exit(what, timeout, &ready) {
            Ok(()) => return proc,
            Err(status) if status.signal() == Some(libc::SIGSEGV) && attempt < 3 => {
                eprintln!("{name} crashed (SIGSEGV) while starting; attempt {}", attempt + 1);
                attempt += 1;
            }
            Err(status) => panic!("{name} exited with {status} before it did {what}\n{}", proc.logs()),
        }
    }
}

/// A libtorrent seeder in a small DHT of libtorrent sessions on loopback
/// (`scripts/lt_dht_seed.py`).
pub struct LtDhtSeed {
    /// The process running every session.
    pub proc: Proc,
    /// The DHT address of every session, the seeder's first.
    pub nodes: Vec<SocketAddr>,
}

/// Starts a libtorrent seeder of `torrent` (data under `save_path`) on `port` and one DHT-only
/// libtorrent session per `node_ports`, whose DHT knows only each other. Returns once the seeder
/// seeds and another node has stored its DHT announce.
pub fn lt_dht_seed(td: &TestDir, torrent: &Path, save_path: &Path, port: u16, node_ports: &[u16]) -> LtDhtSeed {
    lt_dht_seed_from(td, torrent, save_path, port, node_ports, &[])
}

/// [`lt_dht_seed`] whose sessions know only `start_from` (other DHT nodes on loopback, say a
/// Shoal), not each other: they must bootstrap through those nodes.
pub fn lt_dht_seed_from(
    td: &TestDir,
    torrent: &Path,
    save_path: &Path,
    port: u16,
    node_ports: &[u16],
    start_from: &[SocketAddr],
) -> LtDhtSeed {
    lt_dht_seed_with(td, (torrent, save_path), port, node_ports, start_from, "{}")
}

/// [`lt_dht_seed_from`] (of `torrent.0`, data under `torrent.1`) with `settings` (a JSON object
/// of libtorrent settings, `LT_SETTINGS`) over the loopback ones of every session: uTP only,
/// for one.
pub fn lt_dht_seed_with(
    td: &TestDir,
    torrent: (&Path, &Path),
    port: u16,
    node_ports: &[u16],
    start_from: &[SocketAddr],
    settings: &str,
) -> LtDhtSeed {
    let (torrent, save_path) = torrent;
    let command = || {
        let mut cmd = script("lt_dht_seed.py");
        cmd.env("LT_SETTINGS", settings);
        for n in start_from {
            cmd.args(["--extra-node", &n.to_string()]);
        }
        if !start_from.is_empty() {
            cmd.arg("--isolated");
        }
        cmd.arg("--torrent").arg(torrent);
        cmd.arg("--save-path").arg(save_path);
        cmd.args(["--port", &port.to_string()]);
        for p in node_ports {
            cmd.args(["--node-port", &p.to_string()]);
        }
        cmd.args(["--ready-timeout", &DHT_READY_TIMEOUT.as_secs().to_string()]);
        cmd
    };
    let nodes_line = |s: &str| s.lines().find_map(|l| l.strip_prefix("dht-nodes ")).map(str::to_string);
    let ready = DHT_READY_TIMEOUT + Duration::from_secs(10);
    let proc = spawn_until_ready(td, "lt_dht_seed", command, "print its DHT nodes", ready, |s| nodes_line(s).is_some());
    let line = nodes_line(&proc.stdout()).expect("waited for the line");
    let nodes = line
        .split(',')
        .map(|a| a.parse().unwrap_or_else(|e| panic!("lt_dht_seed.py printed a bad node {a:?}: {e}")))
        .collect();
    LtDhtSeed { proc, nodes }
}

/// Starts a libtorrent leecher of `torrent` into `save_path` on `port`, connecting to
/// `peers` directly (and to the torrent's trackers). It exits 0 when done, 2 after
/// `timeout`; wait for it with [`Proc::expect_success`].
pub fn lt_leech(
    td: &TestDir,
    torrent: &Path,
    save_path: &Path,
    port: u16,
    peers: &[SocketAddr],
    timeout: Duration,
) -> Proc {
    lt_leech_with(td, torrent, save_path, (port, peers), timeout, "{}")
}

/// [`lt_leech`] (on `listen.0`, dialling `listen.1`) with `settings` (a JSON object of
/// libtorrent settings, `LT_SETTINGS`) over the loopback ones.
pub fn lt_leech_with(
    td: &TestDir,
    torrent: &Path,
    save_path: &Path,
    listen: (u16, &[SocketAddr]),
    timeout: Duration,
    settings: &str,
) -> Proc {
    let (port, peers) = listen;
    let mut cmd = script("lt_leech.py");
    cmd.env("LT_SETTINGS", settings);
    cmd.arg("--torrent").arg(torrent);
    cmd.arg("--save-path").arg(save_path);
    cmd.args(["--port", &port.to_string()]);
    cmd.args(["--timeout", &timeout.as_secs().to_string()]);
    add_peers(&mut cmd, peers);
    Proc::spawn("lt_leech", cmd, &td.logs(), Duration::from_secs(3))
}

/// Which kind of torrent [`lt_make`] creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LtKind {
    /// BitTorrent v1 only.
    V1,
    /// v1+v2 hybrid: files are piece-aligned with BEP 47 pad files.
    Hybrid,
}

/// Makes a torrent of `path` with libtorrent: `piece_size` bytes, one tier per tracker URL.
pub fn lt_make(td: &TestDir, path: &Path, out: &Path, piece_size: u64, trackers: &[String], kind: LtKind) {
    let mut cmd = script("lt_make.py");
    cmd.arg("--path").arg(path);
    cmd.arg("--out").arg(out);
    cmd.args(["--piece-size", &piece_size.to_string()]);
    for t in trackers {
        cmd.args(["--tracker", t]);
    }
    if kind == LtKind::Hybrid {
        cmd.arg("--hybrid");
    }
    run_ok("lt_make", cmd, &td.logs(), TOOL_TIMEOUT);
}

/// libtorrent's view of a torrent (see `scripts/lt_info.py` for the keys).
pub fn lt_info(td: &TestDir, torrent: &Path) -> serde_json::Value {
    let mut cmd = script("lt_info.py");
    cmd.arg(torrent);
    let out = run_ok("lt_info", cmd, &td.logs(), TOOL_TIMEOUT);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lt_info.py printed bad JSON ({e}): {out}"))
}

/// Makes a torrent with mktorrent: one tracker, pieces of `2^piece_log2` bytes, no date.
pub fn mktorrent(td: &TestDir, path: &Path, out: &Path, tracker: &str, piece_log2: u32) {
    let mut cmd = Command::new("mktorrent");
    cmd.args(["-d", "-t", "2", "-a", tracker, "-l", &piece_log2.to_string(), "-o"]);
    cmd.arg(out).arg(path);
    run_ok("mktorrent", cmd, &td.logs(), TOOL_TIMEOUT);
}

/// The info-hash transmission-show reports for a torrent (40 lowercase hex digits).
pub fn transmission_show_hash(td: &TestDir, torrent: &Path) -> String {
    let mut cmd = Command::new("transmission-show");
    cmd.arg(torrent);
    let out = run_ok("transmission-show", cmd, &td.logs(), TOOL_TIMEOUT);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Hash:"))
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|| panic!("no Hash: line in transmission-show output:\n{out}"))
}

/// Starts the corrupt peer (`scripts/corrupt_peer.py`) for `torrent` on `port`, reading the
/// real data under `save_path` to corrupt it; returns once it listens.
pub fn corrupt_peer(td: &TestDir, torrent: &Path, save_path: &Path, port: u16) -> Proc {
    let mut cmd = script("corrupt_peer.py");
    cmd.arg("--torrent").arg(torrent);
    cmd.arg("--save-path").arg(save_path);
    cmd.args(["--port", &port.to_string()]);
    let mut p = Proc::spawn("corrupt_peer", cmd, &td.logs(), Duration::ZERO);
    p.wait_stdout("print ready", READY_TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    p
}

/// A transmission-cli leecher. It never exits by itself; a finish script touches a marker
/// file when the download is complete.
pub struct Transmission {
    proc: Proc,
    marker: PathBuf,
    port: u16,
}

impl Transmission {
    /// Starts transmission-cli downloading `torrent` into `dir`, listening on `port`, and
    /// returns once it accepts connections. It drops loopback peers learnt from a tracker, so
    /// the seeder must connect to it (`127.0.0.1:port`).
    pub fn start(td: &TestDir, torrent: &Path, dir: &Path, port: u16) -> Transmission {
        Self::start_with(td, torrent, dir, port, false)
    }

    /// [`Transmission::start`], with encryption required (`-er`) if `encrypted`: it then
    /// takes and keeps only MSE/PE connections.
    pub fn start_with(td: &TestDir, torrent: &Path, dir: &Path, port: u16, encrypted: bool) -> Transmission {
        let config = td.dir("transmission-config");
        let settings = serde_json::json!({
            "bind-address-ipv4": "127.0.0.1",
            "bind-address-ipv6": "::1",
            "blocklist-enabled": false,
            "dht-enabled": false,
            "lpd-enabled": false,
            "pex-enabled": false,
            "utp-enabled": false,
            "port-forwarding-enabled": false,
            "peer-port": port,
            "peer-port-random-on-start": false,
            "encryption": if encrypted { 2 } else { 0 },
            "download-dir": dir,
            "incomplete-dir-enabled": false,
            "rename-partial-files": false,
            "rpc-enabled": false,
            "speed-limit-down-enabled": false,
            "speed-limit-up-enabled": false,
            "ratio-limit-enabled": false,
            "message-level": 2,
        });
        std::fs::write(config.join("settings.json"), serde_json::to_string_pretty(&settings).expect("json"))
            .expect("cannot write transmission settings.json");
        let marker = td.path().join("transmission-done");
        let finish = td.path().join("transmission-finish.sh");
        std::fs::write(&finish, format!("#!/bin/sh\ntouch '{}'\n", marker.display()))
            .expect("cannot write finish script");
        std::fs::set_permissions(&finish, std::fs::Permissions::from_mode(0o755)).expect("cannot chmod finish script");

        let mut cmd = Command::new("transmission-cli");
        cmd.arg("-g").arg(&config);
        cmd.arg("-w").arg(dir);
        cmd.args(["-p", &port.to_string(), "-M", "-B", if encrypted { "-er" } else { "-et" }]);
        cmd.arg("-f").arg(&finish);
        cmd.arg(torrent);
        let mut proc = Proc::spawn("transmission", cmd, &td.logs(), Duration::from_secs(5));
        let res = wait_for("transmission to listen", Duration::from_secs(120), || {
            if let Some(s) = proc.try_status() {
                return Some(Err(format!("transmission exited early with {s}")));
            }
            wait_port_open(port, Duration::from_millis(50)).ok().map(Ok)
        });
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => panic!("{e}\n{}", proc.logs()),
        }
        Transmission { proc, marker, port }
    }

    /// The address a seeder must connect to.
    pub fn addr(&self) -> SocketAddr {
        crate::wait::loopback(self.port)
    }

    /// Waits for the finish script's marker, then stops transmission (SIGTERM, so it flushes
    /// and closes its files). Panics with its logs on timeout.
    pub fn wait_done(&mut self, timeout: Duration) {
        let marker = self.marker.clone();
        let proc = &mut self.proc;
        let res = wait_for("transmission to finish", timeout, || {
            if marker.exists() {
                return Some(Ok(()));
            }
            proc.try_status().map(|s| Err(format!("transmission exited with {s} before finishing")))
        });
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => panic!("{e}\n{}", self.proc.logs()),
        }
        self.proc.terminate(Duration::from_secs(15));
    }
}

/// Starts aria2c downloading `torrent` into `dir` (listening on `port`); it exits 0 when done
/// (`--seed-time=0`). aria2 cannot use UDP trackers with DHT off: give it an HTTP tracker.
pub fn aria2(td: &TestDir, torrent: &Path, dir: &Path, port: u16) -> Proc {
    aria2_with(td, torrent, dir, port, &[])
}

/// [`aria2`] with `extra` options (`--bt-require-crypto=true`, for one).
pub fn aria2_with(td: &TestDir, torrent: &Path, dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("aria2c");
    cmd.args(extra);
    cmd.args([
        "--no-conf=true",
        "--seed-time=0",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--interface=127.0.0.1",
        "--file-allocation=none",
        "--summary-interval=0",
        "--show-console-readout=false",
        "--enable-color=false",
        "--console-log-level=notice",
        "--log-level=info",
        "--bt-stop-timeout=300",
    ]);
    cmd.arg(format!("--listen-port={port}"));
    cmd.arg(format!("--dir={}", dir.display()));
    // Its detailed log (peer messages, why connections closed) for post-mortems.
    cmd.arg(format!("--log={}", td.logs().join("aria2c.log").display()));
    cmd.arg(torrent);
    Proc::spawn("aria2c", cmd, &td.logs(), Duration::from_secs(3))
}
