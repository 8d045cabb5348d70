//! The `shoal` binary under test: finding it and running its subcommands.
//!
//! The CLI contract the tests rely on:
//! * `shoal download <TORRENT|MAGNET> -o DIR [--runtime smol|tokio] [--listen-port N] [--peer HOST:PORT]... [--seed]`
//!   (a magnet prints `fetching metadata`, then `metadata received: NAME ...`; the DHT's only
//!   contacts are the nodes in `SHOAL_DHT_BOOTSTRAP=ip:port,...`)
//! * `shoal seed <TORRENT> <DIR> [--runtime smol|tokio] [--listen-port N] [--peer HOST:PORT]...`
//! * `shoal create <PATH> -o FILE [--tracker URL]... [--piece-size N] [--private] [--comment S]`
//! * `shoal info <TORRENT> [--json]`
//! * errors: one line on stderr, non-zero exit; logs on a non-terminal stderr contain
//!   `hash check failed for piece <N>` and `banned peer <IP:PORT>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::proc::{run, Finished, Proc};
use crate::workdir::TestDir;

/// How long a seeder gets between SIGTERM and SIGKILL (time to send `stopped`).
const SHOAL_GRACE: Duration = Duration::from_secs(5);

/// How long quick subcommands (`info`, `create`) may take.
const QUICK_TIMEOUT: Duration = Duration::from_secs(60);

/// The `shoal` binary: `SHOAL_BIN`, else the newer of `target/release/shoal` and
/// `target/debug/shoal` (under `CARGO_TARGET_DIR` if set, and the workspace's `target/`).
///
/// Panics with instructions if there is none.
pub fn shoal_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_bin).clone().unwrap_or_else(|e| panic!("{e}"))
}

fn find_bin() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SHOAL_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "SHOAL_BIN={} does not exist: run `cargo build -p shoal-api` (or `--release`) first",
                bin.display()
            ))
        };
    }
    let mut target_dirs = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        target_dirs.push(PathBuf::from(t));
    }
    let workspace = crate::workdir::package_dir().parent().expect("tests/ is inside the workspace").to_path_buf();
    target_dirs.push(workspace.join("target"));
    let newest = target_dirs
        .iter()
        .flat_map(|t| ["release", "debug"].map(|p| t.join(p).join("shoal")))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).ok()?.modified().ok()?;
            Some((modified, p))
        })
        .max_by_key(|(m, _): &(SystemTime, PathBuf)| *m);
    match newest {
        Some((_, p)) => Ok(p),
        None => Err(format!(
            "no shoal binary found (looked in {}): run `cargo build -p shoal-api` \
             (or `cargo build --release -p shoal-api`) first, or set SHOAL_BIN",
            target_dirs.iter().map(|t| t.display().to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A `shoal` command with the given arguments (not started), kept on loopback with
/// `SHOAL_LOCAL_ONLY=1` (no public DHT router, no peer or DHT node off the machine) whatever
/// the environment of the test run.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(shoal_bin());
    cmd.args(args);
    cmd.env("SHOAL_LOCAL_ONLY", "1");
    cmd
}

/// For each `name`, the tests `name::smol` and `name::tokio`: the function `name(rt: Runtime)`
/// run with Shoal's sessions on that runtime (`cargo test ::tokio` runs one runtime's share).
#[macro_export]
macro_rules! on_each_runtime {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn smol() {
                super::$name($crate::shoal::Runtime::Smol)
            }

            #[test]
            fn tokio() {
                super::$name($crate::shoal::Runtime::Tokio)
            }
        }
    )+};
}

/// The async runtime a `shoal download` or `shoal seed` runs its session on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// shoal-smol (the default).
    Smol,
    /// shoal-tokio.
    Tokio,
}

impl Runtime {
    /// The value of `--runtime`.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Smol => "smol",
            Runtime::Tokio => "tokio",
        }
    }
}

fn add_peers(cmd: &mut Command, peers: &[SocketAddr]) {
    for p in peers {
        cmd.arg("--peer").arg(p.to_string());
    }
}

/// Starts `shoal download TORRENT -o OUT --runtime RT --listen-port PORT [--peer ..]`; wait
/// for it with [`Proc::expect_success`]. `name` labels its logs (several leechers in one test).
pub fn download(
    td: &TestDir,
    rt: Runtime,
    name: &str,
    torrent: &Path,
    out: &Path,
    port: u16,
    peers: &[SocketAddr],
) -> Proc {
    let cmd = download_command(rt, torrent.as_os_str(), out, port, peers);
    Proc::spawn(name, cmd, &td.logs(), SHOAL_GRACE)
}

/// Starts `shoal download MAGNET -o OUT --runtime RT --listen-port PORT [--peer ..]` with
/// `SHOAL_DHT_BOOTSTRAP` set to `dht_nodes` (its DHT's only contacts; none if empty).
#[allow(clippy::too_many_arguments)]
pub fn download_magnet(
    td: &TestDir,
    rt: Runtime,
    name: &str,
    magnet: &str,
    out: &Path,
    port: u16,
    peers: &[SocketAddr],
    dht_nodes: &[SocketAddr],
) -> Proc {
    let mut cmd = download_command(rt, magnet.as_ref(), out, port, peers);
    let nodes: Vec<String> = dht_nodes.iter().map(|a| a.to_string()).collect();
    cmd.env("SHOAL_DHT_BOOTSTRAP", nodes.join(","));
    Proc::spawn(name, cmd, &td.logs(), SHOAL_GRACE)
}

/// The `shoal download` command [`download`] runs, for tests that add flags of their own.
pub fn download_command(rt: Runtime, what: &std::ffi::OsStr, out: &Path, port: u16, peers: &[SocketAddr]) -> Command {
    let mut cmd = command(["download"]);
    cmd.arg(what).arg("-o").arg(out);
    cmd.args(["--runtime", rt.name()]);
    cmd.args(["--listen-port", &port.to_string()]);
    add_peers(&mut cmd, peers);
    cmd
}

/// Starts `shoal seed TORRENT DIR --runtime RT --listen-port PORT [--peer ..]` (data at
/// DIR/<name>).
pub fn seed(td: &TestDir, rt: Runtime, torrent: &Path, dir: &Path, port: u16, peers: &[SocketAddr]) -> Proc {
    let mut cmd = command(["seed"]);
    cmd.arg(torrent).arg(dir);
    cmd.args(["--runtime", rt.name()]);
    cmd.args(["--listen-port", &port.to_string()]);
    add_peers(&mut cmd, peers);
    Proc::spawn("shoal_seed", cmd, &td.logs(), SHOAL_GRACE)
}

/// Runs `shoal create PATH -o OUT [--tracker ..] --piece-size N`; panics unless it succeeds.
pub fn create(td: &TestDir, path: &Path, out: &Path, trackers: &[String], piece_size: u64) {
    let mut cmd = command(["create"]);
    cmd.arg(path).arg("-o").arg(out);
    for t in trackers {
        cmd.args(["--tracker", t]);
    }
    cmd.args(["--piece-size", &piece_size.to_string()]);
    let done = run("shoal_create", cmd, &td.logs(), QUICK_TIMEOUT);
    assert!(done.status.success(), "shoal create failed with {}: {}", done.status, done.stderr);
}

/// Runs `shoal info TORRENT --json` and parses its output; panics unless it succeeds.
pub fn info_json(td: &TestDir, torrent: &Path) -> serde_json::Value {
    let done = run_args(td, "shoal_info", ["info".as_ref(), torrent.as_os_str(), "--json".as_ref()]);
    assert!(done.status.success(), "shoal info --json failed with {}: {}", done.status, done.stderr);
    serde_json::from_str(&done.stdout)
        .unwrap_or_else(|e| panic!("shoal info --json printed bad JSON ({e}):\n{}", done.stdout))
}

/// Runs `shoal` with `args` to completion (at most a minute) and returns what it did.
pub fn run_args<I, S>(td: &TestDir, name: &str, args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(name, command(args), &td.logs(), QUICK_TIMEOUT)
}
