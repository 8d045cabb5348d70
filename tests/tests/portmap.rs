//! Port mapping against a real router: Debian's miniupnpd (UPnP IGD, NAT-PMP and PCP, nftables)
//! in a network namespace between a LAN namespace, where `shoal seed` runs, and a WAN
//! namespace, where a python-libtorrent peer dials the router's external address and
//! downloads through the forwarded port. Then a fake router that answers garbage and lies about
//! its external address and speaks no PCP.
//!
//! Everything runs in namespaces the test creates, joined by veth pairs that are created
//! inside them (never in the host's namespace), so nothing can leave the machine. Shoal runs
//! with `SHOAL_LOCAL_ONLY=netns` (private addresses and multicast only, and it refuses to run
//! in the host's namespace) and `SHOAL_PORTMAP=1` (port mapping asked for explicitly). Needs
//! root, `miniupnpd` (Debian's miniupnpd-nftables), `nft` and python3-libtorrent; skipped with
//! a message otherwise.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_tests::data::Compare;
use shoal_tests::netns::Netns;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{assert_same_tree, peers, wait_for, Proc, TestDir};

/// The router's LAN address (the LAN's gateway) and Shoal's.
const ROUTER_LAN: &str = "10.77.0.1";
const SHOAL_LAN: &str = "10.77.0.2";
/// The router's external address, and the WAN peer's. Not from a reserved block: miniupnpd
/// refuses to map behind a reserved external address, and Shoal does not believe one.
const ROUTER_WAN: &str = "11.77.0.1";
const PEER_WAN: &str = "11.77.0.2";
/// Shoal's listen port, and the WAN peer's.
const PORT: u16 = 6881;
const PEER_PORT: u16 = 6890;
/// Where the test's tracker (in the router namespace, on its LAN side) listens.
const TRACKER_PORT: u16 = 6969;
const TIMEOUT: Duration = Duration::from_secs(120);

/// Three namespaces: lan (Shoal) — router — wan (the peer).
struct Lab {
    lan: Netns,
    router: Netns,
    wan: Netns,
}

impl Lab {
    fn create(tag: &str) -> Result<Lab, String> {
        let lab = Lab {
            lan: Netns::create(&format!("{tag}-lan"))?,
            router: Netns::create(&format!("{tag}-rt"))?,
            wan: Netns::create(&format!("{tag}-wan"))?,
        };
        // Each pair is made inside the router's namespace with its peer end in the other one.
        lab.router.ip(&["link", "add", "rlan", "type", "veth", "peer", "name", "lan0", "netns", lab.lan.name()])?;
        lab.router.ip(&["link", "add", "rwan", "type", "veth", "peer", "name", "wan0", "netns", lab.wan.name()])?;
        for (ns, dev, addr) in [
            (&lab.router, "rlan", ROUTER_LAN),
            (&lab.router, "rwan", ROUTER_WAN),
            (&lab.lan, "lan0", SHOAL_LAN),
            (&lab.wan, "wan0", PEER_WAN),
        ] {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        // Shoal's default route (and so its NAT-PMP gateway, read from /proc/net/route) is the
        // router; the WAN peer has no route to the LAN: only a forwarded port reaches Shoal.
        lab.lan.ip(&["route", "add", "default", "via", ROUTER_LAN])?;
        lab.router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        Ok(lab)
    }
}

/// Runs `program ARGS` inside `ns`; `Err` with its output if it fails.
/// The router's firewall: forwarding dropped but for replies, the LAN's own traffic and what
/// miniupnpd opens in its chains.
const RULESET: &str = "table inet filter {
  chain forward { type filter hook forward priority 0; policy drop;
    ct state established,related accept;
    iifname \"rlan\" accept;
    jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
";

/// miniupnpd's configuration: UPnP and NAT-PMP on the LAN side, mappings for the LAN only.
const MINIUPNPD_CONF: &str = "ext_ifname=rwan
listening_ip=rlan
port=5000
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
uuid=e7e3a8a2-e4d2-4b2e-9c8c-000000000001
allow 1024-65535 10.77.0.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
";

/// Starts miniupnpd in the router namespace; returns once its HTTP server answers.
fn start_miniupnpd(lab: &Lab, td: &TestDir) -> Result<Proc, String> {
    let ruleset = td.join("ruleset.nft");
    std::fs::write(&ruleset, RULESET).map_err(|e| e.to_string())?;
    lab.router.exec("nft", &["-f", path(&ruleset)])?;
    let conf = td.join("miniupnpd.conf");
    std::fs::write(&conf, MINIUPNPD_CONF).map_err(|e| e.to_string())?;
    let mut cmd = lab.router.command("miniupnpd");
    cmd.args(["-f", path(&conf), "-d", "-P", path(&td.join("miniupnpd.pid"))]);
    let proc = Proc::spawn("miniupnpd", cmd, &td.logs(), Duration::from_secs(3));
    let gateway: SocketAddr = format!("{ROUTER_LAN}:5000").parse().expect("an address");
    let up = lab.lan.run(move || {
        wait_for("miniupnpd's HTTP server", Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&gateway, Duration::from_secs(1)).ok()
        })
        .map(|_| ())
    });
    up.map(|_| proc)
}

/// miniupnpd's forwarding rules (its NAT chain, which names each mapped port).
fn nat_rules(lab: &Lab) -> String {
    lab.router.exec("nft", &["list", "chain", "inet", "filter", "prerouting_miniupnpd"]).unwrap_or_else(|e| e)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A tiny HTTP tracker in the router namespace that records every announce's query and answers
/// with no peers; with `description`, it also serves that body as a UPnP device description.
struct FakeHttp {
    queries: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    fn start(ns: &Netns, port: u16, description: Option<&'static [u8]>) -> FakeHttp {
        let queries = Arc::new(Mutex::new(Vec::new()));
        let seen = queries.clone();
        let listener = ns.run(move || TcpListener::bind((ROUTER_LAN, port)).expect("bind the fake HTTP server"));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length.min(1 << 16)];
                let _ = reader.read_exact(&mut body);
                let target = request.split_whitespace().nth(1).unwrap_or_default().to_string();
                let answer: Vec<u8> = if target.starts_with("/announce") {
                    seen.lock().unwrap().push(target);
                    b"d8:intervali1800e5:peers0:e".to_vec()
                } else {
                    description.unwrap_or(b"").to_vec()
                };
                let mut stream = reader.into_inner();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", answer.len());
                let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&answer));
            }
        });
        FakeHttp { queries }
    }

    /// The announce queries so far, parsed.
    fn announces(&self) -> Vec<HashMap<String, String>> {
        let queries = self.queries.lock().unwrap().clone();
        queries
            .iter()
            .map(|q| {
                let query = q.split_once('?').map_or("", |(_, q)| q);
                query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
            })
            .collect()
    }
}

/// `shoal seed` inside the LAN namespace with port mapping asked for, logging at info.
fn shoal_seed(lab: &Lab, td: &TestDir, torrent: &Path, dir: &Path, extra: &[&str]) -> Proc {
    let mut cmd = lab.lan.command("env");
    cmd.args(["SHOAL_LOCAL_ONLY=netns", "SHOAL_PORTMAP=1", "RUST_LOG=shoal_host=info"]);
    cmd.arg(shoal_bin()).args(["seed", path(torrent), path(dir), "--listen-port", &PORT.to_string(), "--no-lsd"]);
    cmd.args(extra);
    Proc::spawn("shoal_seed", cmd, &td.logs(), Duration::from_secs(10))
}

/// The libtorrent leecher in the WAN namespace, dialling the router's external address.
fn wan_leech(lab: &Lab, td: &TestDir, torrent: &Path, out: &Path, external_port: u16) -> Proc {
    let mut cmd = lab.wan.command("env");
    let settings = format!(r#"{{"listen_interfaces": "{PEER_WAN}:{PEER_PORT}", "outgoing_interfaces": "wan0"}}"#);
    cmd.arg(format!("LT_SETTINGS={settings}"));
    cmd.args(["PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]);
    cmd.arg(peers::python()).arg(shoal_tests::package_dir().join("scripts").join("lt_leech.py"));
    cmd.arg("--torrent").arg(torrent).arg("--save-path").arg(out);
    cmd.args(["--port", &PEER_PORT.to_string(), "--timeout", &TIMEOUT.as_secs().to_string()]);
    cmd.args(["--peer", &format!("{ROUTER_WAN}:{external_port}")]);
    Proc::spawn("lt_leech_wan", cmd, &td.logs(), Duration::from_secs(3))
}

fn have_tools() -> Result<(), String> {
    for tool in ["miniupnpd", "nft"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Err(format!("{tool} is not installed (apt install miniupnpd-nftables nftables)"));
        }
    }
    Ok(())
}

/// A torrent of one 4 MiB file announced to the test's tracker; returns (torrent, data dir, file).
fn content(td: &TestDir) -> (PathBuf, PathBuf, PathBuf) {
    let src = td.dir("src");
    let file = shoal_tests::data::single_file(&src, "payload.bin", 4 << 20, 17);
    let torrent = td.join("payload.torrent");
    let tracker = format!("http://{ROUTER_LAN}:{TRACKER_PORT}/announce");
    shoal::create(td, &file, &torrent, &[tracker], 64 << 10);
    (torrent, src, file)
}

#[test]
fn a_wan_peer_downloads_through_ports_mapped_by_upnp_natpmp_and_pcp() {
    let lab = match have_tools().and_then(|_| Lab::create("pm")) {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("SKIPPED: needs root, miniupnpd and nft for namespaces with a router: {e}");
            return;
        }
    };
    let td = TestDir::new("portmap_miniupnpd");
    let _router = start_miniupnpd(&lab, &td).expect("miniupnpd starts");
    let tracker = FakeHttp::start(&lab.router, TRACKER_PORT, None);
    let (torrent, src, file) = content(&td);

    // PCP is asked first and miniupnpd speaks it; `--no-pcp` keeps to NAT-PMP (version 0).
    // UPnP and PCP also run with every socket bound to the LAN interface (`--bind-interface`):
    // SSDP, the SOAP requests and the PCP datagrams go out bound too.
    let rounds = [
        ("UPnP", &["--no-natpmp", "--bind-interface", "lan0"][..]),
        ("NAT-PMP", &["--no-upnp", "--no-pcp"]),
        ("PCP", &["--no-upnp", "--bind-interface", "lan0"]),
    ];
    for (round, (via, flags)) in rounds.into_iter().enumerate() {
        let mut seeder = shoal_seed(&lab, &td, &torrent, &src, &[flags, &["--no-dht"]].concat());
        seeder.wait_stderr(&format!("{via} mapping"), TIMEOUT, |e| {
            e.contains(&format!("{via}: mapped TCP {PORT} -> external port {PORT}"))
        });
        seeder.wait_stderr("the external address", TIMEOUT, |e| {
            e.contains(&format!("{via}: external address {ROUTER_WAN}"))
        });
        seeder.wait_stderr("the announced address", TIMEOUT, |e| {
            e.contains(&format!("announcing {ROUTER_WAN}:{PORT} to trackers and the DHT from now on"))
        });
        assert!(nat_rules(&lab).contains(&format!("dport {PORT}")), "miniupnpd forwards the port: {}", nat_rules(&lab));
        // The tracker hears the external address and port at once: the mapping is made
        // after the `started` announce, and forces another one (the interval is 1800 s).
        wait_for("an announce of the mapped address", TIMEOUT, || {
            tracker
                .announces()
                .iter()
                .any(|a| {
                    a.get("ip").map(String::as_str) == Some(ROUTER_WAN)
                        && a.get("port") == Some(&PORT.to_string())
                        && !a.contains_key("event")
                })
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {:?}", tracker.announces()));
        let out = td.dir(&format!("out{round}"));
        let mut leech = wan_leech(&lab, &td, &torrent, &out, PORT);
        leech.expect_success(TIMEOUT);
        assert_same_tree(&file, &out.join("payload.bin"), Compare::default());

        seeder.terminate_expect_success(Duration::from_secs(30));
        let log = seeder.stderr();
        assert!(log.contains(&format!("{via}: removed the mapping of TCP {PORT}")), "{log}");
        assert!(!nat_rules(&lab).contains(&format!("dport {PORT}")), "the mapping is gone: {}", nat_rules(&lab));
        let announced = tracker.announces();
        assert!(
            announced.iter().any(|a| a.get("ip").map(String::as_str) == Some(ROUTER_WAN)),
            "an announce carries ip={ROUTER_WAN}: {announced:?}"
        );
    }
}

/// The lie the fake router tells about its external address, and the port it "maps".
const LIE: &str = "10.0.0.99";
const FAKE_EXTERNAL_PORT: u16 = 7777;

/// A fake NAT-PMP gateway in `ns`: garbage first, then a private external address and
/// mappings to [`FAKE_EXTERNAL_PORT`]; deletions are confirmed; PCP is not spoken.
fn fake_natpmp(ns: &Netns) {
    let socket = ns.run(|| UdpSocket::bind((ROUTER_LAN, 5351)).expect("bind the fake NAT-PMP port"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut epoch = 100u32;
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            epoch += 1;
            let _ = socket.send_to(b"\xffgarbage that is no NAT-PMP answer", from);
            let lie: std::net::Ipv4Addr = LIE.parse().expect("an address");
            let answer = match &buf[..n] {
                [0, 0] => [&[0, 128, 0, 0][..], &epoch.to_be_bytes(), &lie.octets()].concat(),
                [0, op @ (1 | 2), 0, 0, i0, i1, _, _, l0, l1, l2, l3] => {
                    let deleting = [*l0, *l1, *l2, *l3] == [0; 4];
                    let external = if deleting { 0 } else { FAKE_EXTERNAL_PORT };
                    [
                        &[0, 128 + op, 0, 0][..],
                        &epoch.to_be_bytes(),
                        &[*i0, *i1],
                        &external.to_be_bytes(),
                        &[*l0, *l1, *l2, *l3],
                    ]
                    .concat()
                }
                // A PCP request: RFC 6886 §3.5's "unsupported version", as NAT-PMP-only routers say.
                [v, op, ..] if *v != 0 => [&[0, 128 | op, 0, 1][..], &epoch.to_be_bytes()].concat(),
                _ => continue,
            };
            let _ = socket.send_to(&answer, from);
        }
    });
}

/// A fake UPnP device in `ns`: answers SSDP searches with a description URL whose document
/// is garbage.
fn fake_ssdp(ns: &Netns) {
    let socket = ns.run(|| {
        let s = UdpSocket::bind(("0.0.0.0", 1900)).expect("bind the fake SSDP port");
        let lan: std::net::Ipv4Addr = ROUTER_LAN.parse().expect("an address");
        s.join_multicast_v4(&"239.255.255.250".parse().expect("the group"), &lan).expect("join the SSDP group");
        s
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((_, from)) = socket.recv_from(&mut buf) {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                 LOCATION: http://{ROUTER_LAN}:5000/rootDesc.xml\r\n\r\n"
            );
            let _ = socket.send_to(answer.as_bytes(), from);
        }
    });
}

#[test]
fn a_router_that_lies_and_answers_garbage_is_reported_not_believed() {
    let lab = match Lab::create("pmfake") {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("SKIPPED: needs root for namespaces with a router: {e}");
            return;
        }
    };
    let td = TestDir::new("portmap_liar");
    fake_natpmp(&lab.router);
    fake_ssdp(&lab.router);
    let _description = FakeHttp::start(&lab.router, 5000, Some(b"<<<this is no XML"));
    let tracker = FakeHttp::start(&lab.router, TRACKER_PORT, None);
    let (torrent, src, _) = content(&td);

    let mut seeder = shoal_seed(&lab, &td, &torrent, &src, &["--no-dht"]);
    seeder.wait_stderr("the fallback from PCP", TIMEOUT, |e| {
        e.contains("PCP: the gateway does not speak it; using NAT-PMP")
    });
    seeder.wait_stderr("the lie reported", TIMEOUT, |e| {
        e.contains(&format!("NAT-PMP: the gateway claims external address {LIE}, which no peer could reach; not used"))
    });
    seeder.wait_stderr("the NAT-PMP mapping", TIMEOUT, |e| {
        e.contains(&format!("NAT-PMP: mapped TCP {PORT} -> external port {FAKE_EXTERNAL_PORT}"))
    });
    // The engine has the mapped port before anything the test makes Shoal do next.
    seeder.wait_stderr("the announce port", TIMEOUT, |e| {
        e.contains(&format!("announcing port {FAKE_EXTERNAL_PORT} to trackers and the DHT from now on"))
    });
    seeder.wait_stderr("the garbage description reported", TIMEOUT, |e| {
        e.contains(&format!("UPnP: mapping TCP {PORT} failed: gateway description")) && e.contains("malformed XML")
    });
    assert!(seeder.try_status().is_none(), "shoal is still running");
    // Stopped once it has announced (after checking its data), so that it announces `stopped`.
    wait_for("the started announce", TIMEOUT, || (!tracker.announces().is_empty()).then_some(()))
        .unwrap_or_else(|e| panic!("{e}"));
    seeder.terminate_expect_success(Duration::from_secs(30));
    let log = seeder.stderr();
    assert!(log.contains(&format!("NAT-PMP: removed the mapping of TCP {PORT}")), "{log}");
    // The mapped port is announced; the lie is not.
    let announced = tracker.announces();
    let stopped = announced.iter().find(|a| a.get("event").map(String::as_str) == Some("stopped"));
    let stopped = stopped.unwrap_or_else(|| panic!("a stopped announce: {announced:?}"));
    assert_eq!(stopped.get("port"), Some(&FAKE_EXTERNAL_PORT.to_string()), "{stopped:?}");
    assert!(announced.iter().all(|a| !a.contains_key("ip")), "no ip= from a lying router: {announced:?}");
}
