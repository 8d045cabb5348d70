//! `shoal download --proxy socks5://...` against real SOCKS5 servers: microsocks (CONNECT,
//! username and password; it has no UDP ASSOCIATE) and dante (UDP ASSOCIATE for a UDP tracker,
//! for uTP and for the DHT, CONNECT for the seed, username and password of a system user the
//! test creates).
//!
//! Shoal runs inside a network namespace the test creates, joined to the host by a veth pair
//! whose host end is the proxy's only address the namespace can reach. The seed and the
//! tracker listen on the host's loopback, which the namespace cannot reach directly: a download
//! that completes went through the proxy. iptables counters inside the namespace count every
//! packet that tries another way (to the seed's or tracker's port on the namespace's loopback,
//! or out of the veth to anything but the proxy); they must stay at 0, also when the password
//! is wrong or the proxy is stopped. Needs root; skipped with a message otherwise.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use shoal_tests::daemon::{tracker_entry, Daemon};
use shoal_tests::data::Compare;
use shoal_tests::netns::Netns;
use shoal_tests::on_each_runtime;
use shoal_tests::peers;
use shoal_tests::shoal::{self, shoal_bin, Runtime};
use shoal_tests::tracker::Opentracker;
use shoal_tests::wait::{free_port, wait_for};
use shoal_tests::{assert_same_tree, magnet, InfoHash, Proc, TestDir};

/// How long a download through the proxy may take.
const TIMEOUT: Duration = Duration::from_secs(120);
/// How long a failure may take to be reported.
const FAIL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a proxy may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// libtorrent's settings for uTP only (read by `scripts/ltcommon.py`): a seeder that a TCP
/// connection (a CONNECT through the proxy) gets nothing from.
const UTP_ONLY: &str = r#"{"enable_outgoing_tcp": false, "enable_incoming_tcp": false,
    "enable_outgoing_utp": true, "enable_incoming_utp": true}"#;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw";

/// A namespace joined to the host by a veth pair `10.231.<net>.1` (host) – `.2` (namespace),
/// with counters of direct traffic.
struct ProxyNet {
    ns: Netns,
    host_ip: String,
    ns_if: String,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl ProxyNet {
    /// `net` tells apart the subnets of tests running at the same time.
    fn create(tag: &str, net: u8) -> Result<ProxyNet, String> {
        let ns = Netns::create(tag)?;
        let id = std::process::id() % 10_000;
        let (host_if, ns_if) = (format!("sx{net}h{id}"), format!("sx{net}n{id}"));
        let host_ip = format!("10.231.{net}.1");
        run(Command::new("ip").args(["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]))?;
        run(Command::new("ip").args(["link", "set", &ns_if, "netns", ns.name()]))?;
        run(Command::new("ip").args(["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]))?;
        run(Command::new("ip").args(["link", "set", &host_if, "up"]))?;
        ns.ip(&["addr", "add", &format!("10.231.{net}.2/30"), "dev", &ns_if])?;
        ns.ip(&["link", "set", &ns_if, "up"])?;
        Ok(ProxyNet { ns, host_ip, ns_if })
    }

    /// Counts (and drops) what leaves the namespace's veth to anything but `proxy_port` on the
    /// host end, and what goes to `direct_ports` on the namespace's loopback.
    fn count_direct(&self, proxy_port: u16, direct_ports: &[u16]) {
        let ports = direct_ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
        let proxy_port = proxy_port.to_string();
        let (ns_if, host_ip) = (self.ns_if.as_str(), self.host_ip.as_str());
        let to_proxy =
            ["-A", "OUTPUT", "-o", ns_if, "-d", host_ip, "-p", "tcp", "--dport", &proxy_port, "-j", "ACCEPT"];
        let rules: [&[&str]; 5] = [
            &["-A", "OUTPUT", "-o", "lo", "-p", "tcp", "-m", "multiport", "--dports", &ports, "-j", "DROP"],
            &["-A", "OUTPUT", "-o", "lo", "-p", "udp", "-m", "multiport", "--dports", &ports, "-j", "DROP"],
            &to_proxy,
            // A UDP association's relay: its port is the proxy's choice.
            &["-A", "OUTPUT", "-o", ns_if, "-d", host_ip, "-p", "udp", "-j", "ACCEPT"],
            &["-A", "OUTPUT", "-o", ns_if, "-j", "DROP"],
        ];
        for rule in rules {
            run(self.ns.command("iptables").args(rule)).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Packets the DROP rules of [`ProxyNet::count_direct`] counted.
    fn direct_packets(&self) -> u64 {
        let listing =
            run(self.ns.command("iptables").args(["-L", "OUTPUT", "-v", "-n", "-x"])).unwrap_or_else(|e| panic!("{e}"));
        listing
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("DROP"))
            .map(|l| l.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0))
            .sum()
    }
}

/// microsocks on the host end of the veth, with a username and password.
fn microsocks(td: &TestDir, net: &ProxyNet, port: u16) -> Proc {
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", &net.host_ip, "-p", &port.to_string(), "-u", USER, "-P", PASSWORD]);
    let proc = Proc::spawn("microsocks", cmd, &td.logs(), Duration::from_millis(200));
    wait_listening(&net.host_ip, port);
    proc
}

/// A system user for dante's username method (it checks the system's passwords), removed on drop.
struct SystemUser {
    name: String,
}

impl SystemUser {
    fn create(password: &str) -> SystemUser {
        // One per test: the tests of this file run at the same time, in one process.
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("shoalsocks{}u{n}", std::process::id());
        run(Command::new("useradd").args(["-M", "-N", "-s", "/usr/sbin/nologin", &name]))
            .unwrap_or_else(|e| panic!("{e}"));
        let user = SystemUser { name };
        let mut chpasswd = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chpasswd: {e}"));
        let mut stdin = chpasswd.stdin.take().expect("piped stdin");
        std::io::Write::write_all(&mut stdin, format!("{}:{password}\n", user.name).as_bytes())
            .expect("chpasswd input");
        drop(stdin);
        assert!(chpasswd.wait().expect("chpasswd ran").success(), "chpasswd failed");
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("userdel").arg(&self.name)) {
            eprintln!("warning: cannot remove user {}: {e}", self.name);
        }
    }
}

/// dante on the host end of the veth (username method), relaying to the host's loopback;
/// it logs each TCP connection and UDP association it passes.
fn danted(td: &TestDir, net: &ProxyNet, port: u16) -> Proc {
    let subnet = format!("{}/30", net.host_ip);
    let conf = td.join("danted.conf");
    let text = format!(
        "logoutput: stderr\ninternal: {ip} port = {port}\nexternal: 127.0.0.1\nclientmethod: none\n\
         socksmethod: username\nuser.privileged: root\nuser.unprivileged: nobody\n\
         client pass {{\n from: {subnet} to: 0.0.0.0/0\n log: connect error\n}}\n\
         socks pass {{\n from: {subnet} to: 0.0.0.0/0\n command: connect udpassociate\n log: connect error\n}}\n\
         socks pass {{\n from: 0.0.0.0/0 to: {subnet}\n command: udpreply\n log: connect error\n}}\n",
        ip = net.host_ip
    );
    std::fs::write(&conf, text).expect("cannot write danted.conf");
    let mut cmd = Command::new("danted");
    cmd.arg("-f").arg(&conf).arg("-p").arg(td.join("danted.pid")).args(["-N", "1"]);
    let proc = Proc::spawn("danted", cmd, &td.logs(), Duration::from_secs(2));
    wait_listening(&net.host_ip, port);
    proc
}

fn wait_listening(ip: &str, port: u16) {
    let addr: SocketAddr = format!("{ip}:{port}").parse().expect("an address");
    wait_for("the proxy to listen", START_TIMEOUT, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok().map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `shoal download TORRENT -o OUT --proxy PROXY [--peer ..]` inside the namespace, whose
/// private addresses the `netns` policy allows.
fn shoal_download(net: &ProxyNet, td: &TestDir, name: &str, torrent: &Path, proxy: &str, peers: &[u16]) -> Proc {
    let cmd = shoal_download_command(net, td, name, path(torrent), proxy, peers);
    Proc::spawn(name, cmd, &td.logs(), Duration::from_secs(5))
}

/// The command of [`shoal_download`], for WHAT (a torrent file or a magnet) into `td/name`,
/// logging the UDP association's comings and goings (`shoal_host` at info).
fn shoal_download_command(net: &ProxyNet, td: &TestDir, name: &str, what: &str, proxy: &str, peers: &[u16]) -> Command {
    let out = td.dir(name);
    let mut cmd = net.ns.command("env");
    cmd.args(["SHOAL_LOCAL_ONLY=netns", "RUST_LOG=warn,shoal_host=info"]).arg(shoal_bin());
    cmd.args(["download", what, "-o", path(&out), "--listen-port", "0", "--proxy", proxy]);
    for p in peers {
        cmd.args(["--peer", &format!("127.0.0.1:{p}")]);
    }
    cmd
}

/// A seeded torrent on the host: content, .torrent announcing to an opentracker, libtorrent
/// seed listening on the host's loopback.
struct Swarm {
    content: std::path::PathBuf,
    torrent: std::path::PathBuf,
    tracker: Opentracker,
    seed_port: u16,
    _seed: Proc,
}

fn swarm(td: &TestDir, udp: bool) -> Swarm {
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 3 << 20, 17);
    let tracker = Opentracker::start(td, &[]);
    let torrent = td.join("payload.torrent");
    let url = if udp { tracker.udp_url() } else { tracker.http_url() };
    shoal::create(td, &content, &torrent, &[url], 64 << 10);
    let hash = InfoHash::of_file(&torrent);
    tracker.allow(hash);
    let seed_port = free_port();
    let seed = peers::lt_seed(td, &torrent, &src, seed_port, &[]);
    tracker.wait_peers(hash, 1, TIMEOUT);
    Swarm { content, torrent, tracker, seed_port, _seed: seed }
}

fn proxy_net_or_skip(tag: &str, net: u8) -> Option<ProxyNet> {
    match ProxyNet::create(tag, net) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace and a veth pair of its own (run as root): {e}");
            None
        }
    }
}

#[test]
fn downloads_from_libtorrent_through_socks5_with_password() {
    let Some(net) = proxy_net_or_skip("socks-ok", 1) else { return };
    let td = TestDir::new("socks-ok");
    let s = swarm(&td, false);
    let proxy_port = free_port();
    let proxy = microsocks(&td, &net, proxy_port);
    net.count_direct(proxy_port, &[s.seed_port, s.tracker.port()]);

    // No --peer: the seed is known only from the HTTP tracker, reached through the proxy.
    let url = format!("socks5://{USER}:{PASSWORD}@{}:{proxy_port}", net.host_ip);
    let mut dl = shoal_download(&net, &td, "out", &s.torrent, &url, &[]);
    dl.expect_success(TIMEOUT);
    assert_same_tree(&s.content, &td.join("out/payload.bin"), Compare::default());

    let log = proxy.stdout() + &proxy.stderr();
    for (what, port) in [("tracker", s.tracker.port()), ("seed", s.seed_port)] {
        let line = format!("connected to 127.0.0.1:{port}");
        assert!(log.contains(&line), "the proxy did not carry the {what} ({line:?} missing)\n{log}");
    }
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}

#[test]
fn a_wrong_password_or_a_stopped_proxy_fails_clearly_and_nothing_goes_direct() {
    let Some(net) = proxy_net_or_skip("socks-fail", 2) else { return };
    let td = TestDir::new("socks-fail");
    let s = swarm(&td, false);
    let proxy_port = free_port();
    let mut proxy = microsocks(&td, &net, proxy_port);
    net.count_direct(proxy_port, &[s.seed_port, s.tracker.port()]);

    let wrong = format!("socks5://{USER}:not-{PASSWORD}@{}:{proxy_port}", net.host_ip);
    let mut dl = shoal_download(&net, &td, "wrong", &s.torrent, &wrong, &[s.seed_port]);
    dl.wait_stderr("a proxy authentication error", FAIL_TIMEOUT, |e| {
        e.contains("proxy: authentication failed") && e.contains(&format!("tracker {}: proxy:", s.tracker.http_url()))
    });
    dl.terminate(Duration::from_secs(10));

    proxy.terminate(Duration::from_secs(5));
    let right = format!("socks5://{USER}:{PASSWORD}@{}:{proxy_port}", net.host_ip);
    let mut dl = shoal_download(&net, &td, "stopped", &s.torrent, &right, &[s.seed_port]);
    dl.wait_stderr("a proxy connection error", FAIL_TIMEOUT, |e| {
        e.contains("proxy: cannot reach the proxy: connection refused")
            && e.contains(&format!("tracker {}: proxy:", s.tracker.http_url()))
    });
    dl.terminate(Duration::from_secs(10));
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}

#[test]
fn announces_to_a_udp_tracker_through_a_dante_udp_association() {
    let Some(net) = proxy_net_or_skip("socks-udp", 3) else { return };
    let td = TestDir::new("socks-udp");
    let s = swarm(&td, true);
    let user = SystemUser::create(PASSWORD);
    let proxy_port = free_port();
    let proxy = danted(&td, &net, proxy_port);
    net.count_direct(proxy_port, &[s.seed_port, s.tracker.port()]);

    // No --peer: the seed is known only from the UDP tracker, asked through the association.
    let url = format!("socks5://{}:{PASSWORD}@{}:{proxy_port}", user.name, net.host_ip);
    let mut dl = shoal_download(&net, &td, "out", &s.torrent, &url, &[]);
    dl.expect_success(TIMEOUT);
    assert_same_tree(&s.content, &td.join("out/payload.bin"), Compare::default());

    let log = proxy.stderr();
    assert!(log.contains("udp/udpassociate"), "dante passed no UDP association\n{log}");
    let seed = format!("127.0.0.1.{}", s.seed_port);
    assert!(log.contains("tcp/connect") && log.contains(&seed), "dante did not carry the seed ({seed})\n{log}");
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}

/// The `tcp/connect` lines of dante's log that name `port` on the host's loopback.
fn dante_connects_to(log: &str, port: u16) -> Vec<&str> {
    let to = format!("127.0.0.1.{port}");
    log.lines().filter(|l| l.contains("tcp/connect") && l.contains(&to)).collect()
}

/// The download went through dante's UDP relay: dante passed a UDP association and never a
/// TCP connect to the seeder, and the uTP-only seeder's log shows the connection over uTP,
/// from dante's side of the host's loopback (the relay's external address).
fn assert_served_over_utp_through(proxy: &Proc, seed: &Proc, seed_port: u16) {
    let log = proxy.stderr();
    assert!(log.contains("udp/udpassociate"), "dante passed no UDP association\n{log}");
    let tcp = dante_connects_to(&log, seed_port);
    assert!(tcp.is_empty(), "the seeder was dialled over TCP, not uTP: {tcp:?}");
    let log = seed.stderr();
    let incoming = log.lines().find(|l| l.contains("incoming connection from 127.0.0.1:"));
    assert!(incoming.is_some_and(|l| l.ends_with("(uTP)")), "the seeder saw no uTP connection\n{log}");
}

/// A uTP-only libtorrent seeder on the host's loopback, known to Shoal by `--peer` alone: the
/// download completes only through dante's UDP relay (a CONNECT to the seeder gets nothing),
/// and no packet tries another way.
fn downloads_over_utp_through_a_dante_udp_association(rt: Runtime) {
    let net_id = if rt == Runtime::Smol { 4 } else { 5 };
    let Some(net) = proxy_net_or_skip(&format!("socks-utp-{}", rt.name()), net_id) else { return };
    let td = TestDir::new(&format!("socks-utp-{}", rt.name()));
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", (4 << 20) + 4321, 19);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[], 64 << 10);
    let seed_port = free_port();
    let seed = peers::lt_seed_with(&td, &torrent, &src, seed_port, &[], UTP_ONLY);
    let user = SystemUser::create(PASSWORD);
    let proxy_port = free_port();
    let proxy = danted(&td, &net, proxy_port);
    net.count_direct(proxy_port, &[seed_port]);

    let url = format!("socks5://{}:{PASSWORD}@{}:{proxy_port}", user.name, net.host_ip);
    let mut cmd = shoal_download_command(&net, &td, "out", path(&torrent), &url, &[seed_port]);
    cmd.args(["--runtime", rt.name()]);
    let mut dl = Proc::spawn("out", cmd, &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &td.join("out/payload.bin"), Compare::default());

    assert!(dl.stderr().contains("UDP association up"), "{}", dl.logs());
    assert_served_over_utp_through(&proxy, &seed, seed_port);
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}
on_each_runtime!(downloads_over_utp_through_a_dante_udp_association);

/// A magnet with the info-hash alone and one DHT node to start from (libtorrent's, on the
/// host's loopback): Shoal's DHT finds the uTP-only seeder through dante's relay, then fetches
/// the metadata and the data over uTP through it.
#[test]
fn finds_a_seeder_by_dht_and_downloads_over_utp_through_dante() {
    let Some(net) = proxy_net_or_skip("socks-dht", 6) else { return };
    let td = TestDir::new("socks-dht");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", (2 << 20) + 99, 21);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[], 64 << 10);
    let hash = InfoHash::of_file(&torrent);
    let seed_port = free_port();
    let node_ports = [free_port(), free_port()];
    let seeder = peers::lt_dht_seed_with(&td, (&torrent, &src), seed_port, &node_ports, &[], UTP_ONLY);
    let user = SystemUser::create(PASSWORD);
    let proxy_port = free_port();
    let proxy = danted(&td, &net, proxy_port);
    let mut watched = vec![seed_port];
    watched.extend(node_ports);
    net.count_direct(proxy_port, &watched);

    let url = format!("socks5://{}:{PASSWORD}@{}:{proxy_port}", user.name, net.host_ip);
    let link = magnet::Link::new(hash).to_string();
    let mut cmd = shoal_download_command(&net, &td, "out", &link, &url, &[]);
    // One node of libtorrent's DHT: the seeder is learnt from it, through the relay.
    cmd.env("SHOAL_DHT_BOOTSTRAP", seeder.nodes[1].to_string());
    let mut dl = Proc::spawn("out", cmd, &td.logs(), Duration::from_secs(5));
    dl.expect_success(TIMEOUT);
    assert_same_tree(&content, &td.join("out/payload.bin"), Compare::default());

    assert_served_over_utp_through(&proxy, &seeder.proc, seed_port);
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}

/// dante grants the association, then stops: Shoal says that uTP and the DHT stopped, and then
/// that the proxy cannot be reached when it asks again; nothing tries another way meanwhile
/// (the peer it keeps dialling is on the host's loopback, unreachable but through the proxy).
#[test]
fn a_stopped_proxy_ends_the_udp_association_clearly_and_nothing_goes_direct() {
    let Some(net) = proxy_net_or_skip("socks-udp-stop", 7) else { return };
    let td = TestDir::new("socks-udp-stop");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 1 << 20, 22);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[], 64 << 10);
    // Nobody listens there: the download never ends, and keeps dialling.
    let peer_port = free_port();
    let user = SystemUser::create(PASSWORD);
    let proxy_port = free_port();
    let mut proxy = danted(&td, &net, proxy_port);
    net.count_direct(proxy_port, &[peer_port]);

    let url = format!("socks5://{}:{PASSWORD}@{}:{proxy_port}", user.name, net.host_ip);
    let cmd = shoal_download_command(&net, &td, "out", path(&torrent), &url, &[peer_port]);
    let mut dl = Proc::spawn("out", cmd, &td.logs(), Duration::from_secs(5));
    dl.wait_stderr("the UDP association", FAIL_TIMEOUT, |e| e.contains("proxy: UDP association up"));
    proxy.terminate(Duration::from_secs(5));
    dl.wait_stderr("the association's end", FAIL_TIMEOUT, |e| {
        e.contains(
            "proxy: the proxy closed the UDP association: uTP and the DHT are stopped (nothing is sent directly)",
        )
    });
    dl.wait_stderr("the failed request for a new one", FAIL_TIMEOUT, |e| {
        e.contains(
            "proxy: cannot reach the proxy: connection refused: no UDP association, so uTP and the DHT are stopped",
        )
    });
    dl.terminate(Duration::from_secs(10));
    assert_eq!(net.direct_packets(), 0, "packets tried to go direct\n{}", dl.logs());
}

/// A SOCKS5 server that misbehaves on purpose (`scripts/socks_liar.py --mode MODE`) on the
/// host's loopback.
fn socks_liar(td: &TestDir, port: u16, mode: &str) -> Proc {
    let mut cmd = peers::script("socks_liar.py");
    cmd.args(["--port", &port.to_string(), "--mode", mode]);
    let mut liar = Proc::spawn(&format!("socks_liar_{mode}"), cmd, &td.logs(), Duration::from_secs(2));
    liar.wait_stdout("print ready", START_TIMEOUT, |s| s.lines().any(|l| l == "ready"));
    liar
}

/// `shoal download` on loopback with its proxy on `proxy_port`, dialling a peer on `peer_port`
/// where nobody listens (its uTP dials are what the relay gets), the association's log at debug.
fn shoal_via_liar(td: &TestDir, name: &str, torrent: &Path, proxy_port: u16, peer_port: u16) -> Proc {
    let out = td.dir(name);
    let mut cmd = shoal::command(["download", path(torrent), "-o", path(&out), "--listen-port", "0"]);
    cmd.args(["--proxy", &format!("socks5://127.0.0.1:{proxy_port}")]);
    cmd.args(["--peer", &format!("127.0.0.1:{peer_port}")]);
    cmd.env("RUST_LOG", "warn,shoal_host=debug");
    Proc::spawn(name, cmd, &td.logs(), Duration::from_secs(5))
}

/// Stops a Shoal that must still be running, and checks that it never panicked.
fn still_running_then_stop(dl: &mut Proc) {
    assert!(dl.try_status().is_none(), "shoal exited\n{}", dl.logs());
    dl.terminate(Duration::from_secs(10));
    assert!(!dl.stderr().contains("panicked"), "{}", dl.logs());
}

/// A server that hangs up mid-handshake, answers UDP ASSOCIATE with garbage or never answers:
/// each request fails with the reason and is made again after the wait; a relay that sends bad headers
/// (fragments, a host name or an unknown type as the source, headers cut short): each datagram
/// is dropped and said, and one from another address than the relay's never arrives.
#[test]
fn a_lying_socks_server_or_relay_is_refused_and_survived() {
    let td = TestDir::new("socks-liar");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 1 << 20, 23);
    let torrent = td.join("payload.torrent");
    shoal::create(&td, &content, &torrent, &[], 64 << 10);

    // Mode, error, requests seen failing: the first and the next one a second later (a silent
    // server takes 10 s per request: its first failure is enough).
    let liars = [
        ("hangup", "the server closed the connection during the handshake", 2),
        ("garbage", "unknown address type 7", 2),
        ("silent", "no answer to the UDP ASSOCIATE request within 10s", 1),
    ];
    for (mode, error, requests) in liars {
        let port = free_port();
        let _liar = socks_liar(&td, port, mode);
        let mut dl = shoal_via_liar(&td, mode, &torrent, port, free_port());
        let line = format!("proxy: {error}: no UDP association");
        let what = format!("{requests} refused associations ({mode})");
        dl.wait_stderr(&what, FAIL_TIMEOUT, |e| e.matches(&line).count() >= requests);
        still_running_then_stop(&mut dl);
    }

    let port = free_port();
    let mut liar = socks_liar(&td, port, "bad-relay");
    let mut dl = shoal_via_liar(&td, "bad-relay", &torrent, port, free_port());
    liar.wait_stdout("the bad datagrams", FAIL_TIMEOUT, |s| s.contains("sent bad datagrams"));
    let dropped = "proxy: dropped a datagram from the UDP relay: ";
    // Eight bad headers from the relay, the last one sent after the stranger's datagram.
    dl.wait_stderr("the bad datagrams dropped", FAIL_TIMEOUT, |e| e.matches(dropped).count() >= 8);
    let log = dl.stderr();
    for why in [
        "fragmented datagram",
        "a host name as the source of a datagram",
        "unknown address type 9",
        "truncated datagram",
    ] {
        assert!(log.contains(&format!("{dropped}{why}")), "{why:?} not dropped\n{log}");
    }
    assert!(!log.contains("unknown address type 11"), "a datagram from another address than the relay arrived\n{log}");
    still_running_then_stop(&mut dl);
}

/// `method path` on the daemon's REST API: the status and the JSON body.
fn rest(d: &Daemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let req = ureq::http::Request::builder().method(method).uri(d.url(path)).header("X-Api-Key", d.key());
    let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
    let mut resp =
        agent.run(req.body(body).expect("a valid request")).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[test]
fn the_daemon_takes_its_proxy_from_the_settings_and_says_when_it_fails() {
    let td = TestDir::new("socks-daemon");
    let state = td.dir("state");
    // Nothing listens on the proxy's port: every connection fails there, and must not go direct.
    let (proxy_port, tracker_port) = (free_port(), free_port());
    let conf = format!(
        "[libtorrent]\nproxy_type = 3\nproxy_server = 127.0.0.1:{proxy_port}\nproxy_auth = {USER}:{PASSWORD}\n"
    );
    std::fs::write(state.join("triblerd.conf"), conf).expect("cannot write triblerd.conf");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 1 << 20, 18);
    let torrent = td.join("payload.torrent");
    let tracker = format!("http://127.0.0.1:{tracker_port}/announce");
    shoal::create(&td, &content, &torrent, std::slice::from_ref(&tracker), 64 << 10);

    let mut d = Daemon::start(&td, "daemon", &state, "socks-key");
    let (code, settings) = rest(&d, "GET", "/settings", None);
    assert_eq!(code, 200, "{settings}");
    assert_eq!(settings["settings"]["libtorrent"]["proxy_type"], json!(3), "{settings}");

    let out = td.dir("out");
    let add = json!({"uri": format!("file:{}", torrent.display()), "destination": out, "anon_hops": 0});
    let (code, answer) = rest(&d, "PUT", "/downloads", Some(&add));
    assert_eq!(code, 200, "{answer}");
    let status = wait_for("the tracker's status to name the proxy", FAIL_TIMEOUT, || {
        let (_, all) = rest(&d, "GET", "/downloads", None);
        let dl = all["downloads"].as_array()?.first()?.clone();
        let status = tracker_entry(&dl, &tracker)?["status"].as_str()?.to_string();
        status.contains("proxy:").then_some(status)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", d.proc().logs()));
    assert!(status.starts_with("Error: proxy: ") && status.contains("refused"), "{status}");
    d.proc().wait_stderr("the log to name the proxy", FAIL_TIMEOUT, |e| {
        e.contains("proxy: ") && e.contains(&format!("(reaching {tracker}"))
    });

    // The DHT/uTP association cannot be set up either: the session says so, and why.
    let session = wait_for("the UDP association's state", FAIL_TIMEOUT, || {
        let (_, answer) = rest(&d, "GET", "/libtorrent/session?hop=0", None);
        let session = answer["session"].clone();
        (session["proxy.udp_state"] == "down").then_some(session)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", d.proc().logs()));
    let error = session["proxy.udp_error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot reach the proxy") && error.contains("refused"), "{session}");
    assert_eq!(session["proxy.num_udp_associations"], json!(0), "{session}");
    assert_eq!(session["proxy.num_udp_sent"], json!(0), "{session}");

    // The types Shoal does not implement are refused, naming the value.
    for (value, name) in [(1, "SOCKS4"), (4, "HTTP"), (5, "HTTP with authentication")] {
        let patch = json!({"libtorrent": {"proxy_type": value}});
        let (code, answer) = rest(&d, "POST", "/settings", Some(&patch));
        assert_eq!(code, 400, "{answer}");
        assert!(answer.to_string().contains(&format!("proxy_type {value} ({name})")), "{answer}");
    }
    d.terminate(Duration::from_secs(10));
}
