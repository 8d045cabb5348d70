//! Local Service Discovery (BEP 14) between two `shoal` processes, on real multicast.
//!
//! Multicast must not leave the machine, so the processes run inside a network namespace the
//! test creates, whose only interface is its own loopback (with multicast routed there). That
//! needs root; without it the test is skipped with a message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_tests::data::Compare;
use shoal_tests::netns::Netns;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{assert_same_tree, Proc, TestDir};

/// How long the download may take (LSD announces go out within a second of starting).
const TIMEOUT: Duration = Duration::from_secs(120);

/// A namespace of the test's own with only `lo` (up, multicast on, 224.0.0.0/4 routed to it).
/// `tag` names it apart from the other test's (both run at once in this process).
fn multicast_netns(tag: &str) -> Result<Netns, String> {
    let ns = Netns::create(tag)?;
    ns.ip(&["link", "set", "lo", "multicast", "on"])?;
    ns.ip(&["route", "add", "224.0.0.0/4", "dev", "lo"])?;
    Ok(ns)
}

/// `shoal ARGS` inside the namespace, kept to it by `SHOAL_LOCAL_ONLY=1`, with LSD asked for
/// explicitly (`SHOAL_LSD=1`).
fn shoal_in(ns: &Netns, args: &[&str]) -> Command {
    let mut cmd = ns.command("env");
    cmd.args(["SHOAL_LOCAL_ONLY=1", "SHOAL_LSD=1"]);
    cmd.arg(shoal_bin()).args(args);
    cmd
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn shoal_finds_a_seeder_through_local_service_discovery_alone() {
    let ns = match multicast_netns("lsd") {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace of its own (run as root): {e}");
            return;
        }
    };
    seeder_found_through_lsd(&ns, "lsd");
}

/// Whether this kernel delivers IPv6 multicast sent on the namespace's loopback back to a
/// socket joined there (some kernels route it, `sendto` succeeds, and nothing arrives). A
/// capability probe of the machine, not a wait on Shoal: one datagram, one second.
fn ipv6_multicast_loops_on_lo(ns: &Netns) -> Result<(), String> {
    ns.run(|| {
        use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
        let group: Ipv6Addr = "ff15::efc0:988f".parse().expect("a group address");
        let rx = UdpSocket::bind("[::]:0").map_err(|e| e.to_string())?;
        rx.join_multicast_v6(&group, 1).map_err(|e| format!("join on lo: {e}"))?;
        rx.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
        let port = rx.local_addr().map_err(|e| e.to_string())?.port();
        let tx = UdpSocket::bind("[::1]:0").map_err(|e| e.to_string())?;
        tx.send_to(b"probe", SocketAddr::from((group, port))).map_err(|e| format!("send on lo: {e}"))?;
        let mut buf = [0u8; 16];
        match rx.recv_from(&mut buf) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("this kernel does not loop IPv6 multicast back on lo ({e})")),
        }
    })
}

/// The IPv6 group (`[ff15::efc0:988f]:6771`) alone: in this namespace IPv4 multicast is
/// dropped on its way out, so only the IPv6 announces can bring the two together.
#[test]
fn shoal_finds_a_seeder_through_the_ipv6_group() {
    let ns = match multicast_netns("lsd6").and_then(|ns| {
        ns.ip(&["-6", "route", "add", "ff00::/8", "dev", "lo"])?;
        ipv6_multicast_loops_on_lo(&ns)?;
        let drop_v4 = ns.command("iptables").args(["-A", "OUTPUT", "-d", "224.0.0.0/4", "-j", "DROP"]).status();
        match drop_v4 {
            Ok(s) if s.success() => Ok(ns),
            other => Err(format!("iptables in the namespace: {other:?}")),
        }
    }) {
        Ok(ns) => ns,
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace of its own, iptables and IPv6 multicast on lo: {e}");
            return;
        }
    };
    seeder_found_through_lsd(&ns, "lsd6");
}

/// A seeder and a downloader in `ns`, with no tracker, no peer given and no DHT: the download
/// completes only if LSD brings them together.
fn seeder_found_through_lsd(ns: &Netns, tag: &str) {
    let td = TestDir::new(tag);
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 3 << 20, 14);
    let torrent = td.join("payload.torrent");
    // No tracker; and below no --peer and no DHT: only LSD can bring the two together.
    shoal::create(&td, &content, &torrent, &[], 64 << 10);

    let seed_args = ["seed", path(&torrent), path(&src), "--runtime", "smol", "--listen-port", "6881", "--no-dht"];
    let _seeder = Proc::spawn("shoal_seed", shoal_in(ns, &seed_args), &td.logs(), Duration::from_secs(5));
    let out = td.dir("out");
    let dl_args =
        ["download", path(&torrent), "-o", path(&out), "--runtime", "tokio", "--listen-port", "6882", "--no-dht"];
    let mut dl = Proc::spawn("shoal_download", shoal_in(ns, &dl_args), &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}
