//! `--bind-interface`: Shoal in a namespace with two interfaces, whose routing table prefers
//! the one Shoal is not bound to, downloads from a seeder it finds through an HTTP tracker;
//! iptables counters in its namespace show that not one packet left by the other interface.
//! A missing interface fails with an error naming it and sends nothing either.
//!
//! Everything runs in namespaces the test creates, joined by veth pairs made inside them;
//! Shoal runs with `SHOAL_LOCAL_ONLY=netns`. Needs root and iptables; skipped otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_tests::data::Compare;
use shoal_tests::netns::Netns;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{assert_same_tree, Proc, TestDir};

/// The far side: seeder and tracker on an address of its own, reached through either link.
const FAR: &str = "10.90.0.1";
const SEED_PORT: u16 = 6881;
const TRACKER_PORT: u16 = 6969;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Two namespaces: `near` (Shoal, interfaces a0 and b0) and `far` (seeder and tracker).
struct Lab {
    near: Netns,
    far: Netns,
}

impl Lab {
    fn create() -> Result<Lab, String> {
        let lab = Lab { near: Netns::create("bi-near")?, far: Netns::create("bi-far")? };
        let near = lab.near.name();
        lab.far.ip(&["link", "add", "fa", "type", "veth", "peer", "name", "a0", "netns", near])?;
        lab.far.ip(&["link", "add", "fb", "type", "veth", "peer", "name", "b0", "netns", near])?;
        for (ns, dev, addr) in [
            (&lab.far, "fa", "10.81.0.1/24"),
            (&lab.far, "fb", "10.82.0.1/24"),
            (&lab.near, "a0", "10.81.0.2/24"),
            (&lab.near, "b0", "10.82.0.2/24"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        lab.far.ip(&["addr", "add", &format!("{FAR}/32"), "dev", "lo"])?;
        // The table prefers b0; only a socket bound to a0 goes by a0.
        lab.near.ip(&["route", "add", &format!("{FAR}/32"), "via", "10.82.0.1", "dev", "b0", "metric", "10"])?;
        lab.near.ip(&["route", "add", &format!("{FAR}/32"), "via", "10.81.0.1", "dev", "a0", "metric", "100"])?;
        // Counters: everything out by b0 is dropped and counted; a0's is counted.
        lab.near.exec("iptables", &["-A", "OUTPUT", "-o", "b0", "-j", "DROP"])?;
        lab.near.exec("iptables", &["-A", "OUTPUT", "-o", "a0", "-j", "ACCEPT"])?;
        Ok(lab)
    }

    /// Packets counted on OUTPUT by `target` (DROP: b0's, ACCEPT: a0's).
    fn packets(&self, target: &str) -> u64 {
        let listing = self.near.exec("iptables", &["-L", "OUTPUT", "-v", "-n", "-x"]).unwrap_or_else(|e| e);
        listing
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(target))
            .map(|l| l.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    }
}

/// An HTTP tracker in `far` that hands out the seeder (and only it) to every announce.
fn tracker(ns: &Netns) {
    let listener = ns.run(|| TcpListener::bind((FAR, TRACKER_PORT)).expect("bind the tracker"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let far: std::net::Ipv4Addr = FAR.parse().expect("an address");
            let peer = [&far.octets()[..], &SEED_PORT.to_be_bytes()].concat();
            let body = [&b"d8:intervali1800e5:peers6:"[..], &peer, b"e"].concat();
            let mut stream = reader.into_inner();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
            let _ = stream.read(&mut [0; 1]);
        }
    });
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `shoal ARGS` in `ns`, local-only for namespaces, LSD off.
fn shoal_in(ns: &Netns, td: &TestDir, name: &str, args: &[&str]) -> Proc {
    let mut cmd = ns.command("env");
    cmd.args(["SHOAL_LOCAL_ONLY=netns", "RUST_LOG=shoal_host=info"]).arg(shoal_bin()).args(args);
    cmd.arg("--no-lsd");
    Proc::spawn(name, cmd, &td.logs(), Duration::from_secs(10))
}

#[test]
fn every_packet_leaves_by_the_bound_interface_and_a_missing_one_fails() {
    let have = Command::new("sh").args(["-c", "command -v iptables"]).output();
    let lab = match have.is_ok_and(|o| o.status.success()).then(Lab::create) {
        Some(Ok(lab)) => lab,
        Some(Err(e)) => return eprintln!("SKIPPED: needs root for namespaces: {e}"),
        None => return eprintln!("SKIPPED: iptables is not installed"),
    };
    let route = lab.near.exec("ip", &["route", "get", FAR]).expect("a route");
    assert!(route.contains("dev b0"), "the table sends unbound traffic by b0: {route}");
    let td = TestDir::new("bind_interface");
    tracker(&lab.far);
    let src = td.dir("src");
    let file = shoal_tests::data::single_file(&src, "payload.bin", 4 << 20, 31);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &file, &torrent, &[format!("http://{FAR}:{TRACKER_PORT}/announce")], 64 << 10);
    let port = SEED_PORT.to_string();
    let _seeder = shoal_in(&lab.far, &td, "seeder", &["seed", path(&torrent), path(&src), "--listen-port", &port]);

    // A missing interface: a clear error, nothing sent.
    let out = td.dir("missing");
    let args = ["download", path(&torrent), "-o", path(&out), "--listen-port", "6882", "--bind-interface", "nosuch0"];
    let mut missing = shoal_in(&lab.near, &td, "missing", &args);
    let status = missing.wait_exit(TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(!status.success(), "a missing interface is an error");
    let log = missing.stderr();
    assert!(log.contains("interface nosuch0") && log.contains("No such device"), "{log}");

    // Bound to a0 (uTP and the DHT on: their UDP socket is bound too), on both runtimes.
    for rt in ["smol", "tokio"] {
        let out = td.dir(&format!("out-{rt}"));
        let args = ["download", path(&torrent), "-o", path(&out), "--listen-port", "6882", "--runtime", rt];
        let mut leech =
            shoal_in(&lab.near, &td, &format!("leech-{rt}"), &[&args[..], &["--bind-interface", "a0"]].concat());
        leech.expect_success(TIMEOUT);
        assert_same_tree(&file, &out.join("payload.bin"), Compare::default());
        assert_eq!(lab.packets("DROP"), 0, "packets left by b0 ({rt}):\n{}", leech.stderr());
    }
    assert!(lab.packets("ACCEPT") > 100, "the downloads went by a0: {} packets", lab.packets("ACCEPT"));
}
