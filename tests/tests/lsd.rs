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

/// `shoal ARGS EXTRA` inside the namespace, kept to it by `SHOAL_LOCAL_ONLY=POLICY` (`1`:
/// loopback; `netns`: the namespace's own addresses), with LSD asked for explicitly
/// (`SHOAL_LSD=1`).
fn shoal_in(ns: &Netns, policy: &str, args: &[&str], extra: &[&str]) -> Command {
    let mut cmd = ns.command("env");
    cmd.arg(format!("SHOAL_LOCAL_ONLY={policy}")).arg("SHOAL_LSD=1");
    cmd.arg(shoal_bin()).args(args).args(extra);
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
    seeder_found_through_lsd(&ns, "lsd", "1", &[]);
}

/// The IPv6 group (`[ff15::efc0:988f]:6771`) alone. Linux does not loop IPv6 multicast back
/// on `lo` (the datagram is sent and never arrives), so this namespace has a veth end `v0`
/// with a ULA address (its peer in a second namespace, so `v0` is the one multicast route),
/// Shoal listens on that address under the namespace policy, and IPv4 multicast is dropped on
/// its way out: only the IPv6 announces can bring the two together.
#[test]
fn shoal_finds_a_seeder_through_the_ipv6_group() {
    let setup = || -> Result<(Netns, Netns), String> {
        let ns = Netns::create("lsd6")?;
        let far = Netns::create("lsd6far")?;
        ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", far.name()])?;
        ns.ip(&["link", "set", "v0", "up"])?;
        far.ip(&["link", "set", "v1", "up"])?;
        ns.ip(&["addr", "add", &format!("{ULA}/64"), "dev", "v0", "nodad"])?;
        ns.exec("iptables", &["-A", "OUTPUT", "-d", "224.0.0.0/4", "-j", "DROP"])?;
        Ok((ns, far))
    };
    let (ns, _far) = match setup() {
        Ok(nss) => nss,
        Err(e) => {
            eprintln!("SKIPPED: needs network namespaces of its own, veth and iptables (run as root): {e}");
            return;
        }
    };
    let bind = ["--bind", ULA];
    seeder_found_through_lsd(&ns, "lsd6", "netns", &bind);
}

/// The address of the IPv6 test's Shoals (a unique local address, allowed by the namespace
/// policy).
const ULA: &str = "fd77::1";

/// A seeder and a downloader in `ns`, with no tracker, no peer given and no DHT: the download
/// completes only if LSD brings them together.
/// `policy` is `SHOAL_LOCAL_ONLY`'s value, `extra` more arguments for both.
fn seeder_found_through_lsd(ns: &Netns, tag: &str, policy: &str, extra: &[&str]) {
    let td = TestDir::new(tag);
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 3 << 20, 14);
    let torrent = td.join("payload.torrent");
    // No tracker; and below no --peer and no DHT: only LSD can bring the two together.
    shoal::create(&td, &content, &torrent, &[], 64 << 10);

    let seed_args = ["seed", path(&torrent), path(&src), "--runtime", "smol", "--listen-port", "6881", "--no-dht"];
    let _seeder =
        Proc::spawn("shoal_seed", shoal_in(ns, policy, &seed_args, extra), &td.logs(), Duration::from_secs(5));
    let out = td.dir("out");
    let dl_args =
        ["download", path(&torrent), "-o", path(&out), "--runtime", "tokio", "--listen-port", "6882", "--no-dht"];
    let mut dl =
        Proc::spawn("shoal_download", shoal_in(ns, policy, &dl_args, extra), &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &out.join("payload.bin"), Compare::default());
}
