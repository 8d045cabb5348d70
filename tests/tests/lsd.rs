//! Local Service Discovery (BEP 14) between two `shoal` processes, on real multicast.
//!
//! Multicast must not leave the machine, so the processes run inside a network namespace the
//! test creates, whose only interface is its own loopback (with multicast routed there). That
//! needs root; without it the test is skipped with a message.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use shoal_tests::data::Compare;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{assert_same_tree, Proc, TestDir};

/// How long the download may take (LSD announces go out within a second of starting).
const TIMEOUT: Duration = Duration::from_secs(120);

/// A network namespace with only `lo` (up, multicast on, 224.0.0.0/4 routed to it), deleted
/// on drop, failure or not.
struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace; `Err` says why it cannot be (typically: not root).
    fn create() -> Result<Netns, String> {
        let name = format!("shoal-lsd-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "lo", "multicast", "on"],
            &["route", "add", "224.0.0.0/4", "dev", "lo"],
        ] {
            let mut full = vec!["netns", "exec", &ns.name, "ip"];
            full.extend_from_slice(args);
            ip(&full)?;
        }
        Ok(ns)
    }

    /// `shoal ARGS` inside the namespace, kept to it by `SHOAL_LOCAL_ONLY=1`, with LSD asked
    /// for explicitly (`SHOAL_LSD=1`).
    fn shoal(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, "env", "SHOAL_LOCAL_ONLY=1", "SHOAL_LSD=1"]);
        cmd.arg(shoal_bin()).args(args);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("warning: cannot delete network namespace {}: {e}", self.name);
        }
    }
}

/// Runs `ip ARGS`; `Err` with its message if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn shoal_finds_a_seeder_through_local_service_discovery_alone() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace of its own (run as root): {e}");
            return;
        }
    };
    let td = TestDir::new("lsd");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 3 << 20, 14);
    let torrent = td.join("payload.torrent");
    // No tracker; and below no --peer and no DHT: only LSD can bring the two together.
    shoal::create(&td, &content, &torrent, &[], 64 << 10);

    let seed_args = ["seed", path(&torrent), path(&src), "--runtime", "smol", "--listen-port", "6881", "--no-dht"];
    let _seeder = Proc::spawn("shoal_seed", ns.shoal(&seed_args), &td.logs(), Duration::from_secs(5));
    let out = td.dir("out");
    let dl_args =
        ["download", path(&torrent), "-o", path(&out), "--runtime", "tokio", "--listen-port", "6882", "--no-dht"];
    let mut dl = Proc::spawn("shoal_download", ns.shoal(&dl_args), &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}
