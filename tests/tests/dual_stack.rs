//! With no `--bind`, Shoal listens on every IPv4 and every IPv6 address on one port: the IPv6
//! sockets are v6-only, so `[::]` binds beside `0.0.0.0` (a dual-stack `[::]`, the system's
//! default, failed there with "address in use" and left the session on IPv4 alone).
//!
//! Runs in a network namespace of the test's own under the namespace policy (loopback only
//! would bind `127.0.0.1` and `[::1]` instead). Needs root; skipped otherwise.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use shoal_tests::netns::Netns;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{Proc, TestDir};

const TIMEOUT: Duration = Duration::from_secs(60);
const PORT: u16 = 6881;

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn the_default_binding_listens_on_ipv4_and_ipv6_alike() {
    let ns = match Netns::create("dual") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace of its own (run as root): {e}");
            return;
        }
    };
    let td = TestDir::new("dual-stack");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 1 << 20, 3);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[], 64 << 10);

    let mut cmd = ns.command("env");
    cmd.arg("SHOAL_LOCAL_ONLY=netns").arg(shoal_bin());
    cmd.args(["seed", path(&torrent), path(&src), "--listen-port", &PORT.to_string()]);
    let mut seed = Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::from_secs(5));
    seed.wait_stderr("the listening line", TIMEOUT, |s| s.contains("listening on"));
    let line = seed.stderr().lines().find(|l| l.starts_with("listening on")).unwrap_or_default().to_string();
    assert!(
        line.contains(&format!("0.0.0.0:{PORT}")) && line.contains(&format!("[::]:{PORT}")),
        "not on both families: {line:?}\n{}",
        seed.logs()
    );
    // The IPv6 listener takes connections (inside the namespace, on its loopback).
    let v6 = ns.run(|| TcpStream::connect_timeout(&format!("[::1]:{PORT}").parse().expect("an address"), TIMEOUT));
    assert!(v6.is_ok(), "no IPv6 connection: {v6:?}\n{}", seed.logs());
    let v4 = ns.run(|| TcpStream::connect_timeout(&format!("127.0.0.1:{PORT}").parse().expect("an address"), TIMEOUT));
    assert!(v4.is_ok(), "no IPv4 connection: {v4:?}\n{}", seed.logs());
    seed.terminate_expect_success(Duration::from_secs(15));
}
