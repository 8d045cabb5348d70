//! `SHOAL_LOCAL_ONLY=1` is one switch that holds (issue #14, finding 2): with it, nothing
//! Shoal runs sends a packet off loopback, whatever a torrent, a magnet or the command line
//! names.
//!
//! `shoal download` and `shoal daemon` run inside a network namespace of the test's own (only
//! `lo`, so even a slip cannot leave the machine) under `strace -f`, with trackers (HTTP and
//! UDP; IPv4, IPv6 and host names) and peers off loopback, plus one loopback peer that proves
//! the trace sees the process's connections. Every `connect`, `sendto`, `sendmsg` and
//! `sendmmsg` destination in the trace must be loopback. Needs root (skipped otherwise) and
//! `strace`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use shoal_tests::magnet::Link;
use shoal_tests::netns::Netns;
use shoal_tests::shoal::{self, shoal_bin};
use shoal_tests::{wait_for, InfoHash, Proc, TestDir};

/// How long each step may take (every target fails at once inside the namespace).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Trackers off loopback: HTTP and UDP, IPv4 and IPv6 literals (documentation and
/// example.com addresses), and host names (whose lookup would ask the name server).
const TRACKERS: [&str; 6] = [
    "http://93.184.216.34/announce",
    "udp://93.184.216.34:6969/announce",
    "http://[2001:db8::1]:6969/announce",
    "udp://[2001:db8::1]:6969/announce",
    "http://tracker.example.org:6969/announce",
    "udp://tracker.example.org:6969/announce",
];

/// Peers off loopback.
const PEERS: [&str; 2] = ["192.0.2.10:6881", "[2001:db8::2]:6881"];

/// DHT nodes off loopback, offered as bootstrap nodes.
const DHT_NODES: &str = "192.0.2.20:6881,[2001:db8::3]:6881";

/// A loopback peer nobody listens on: its `connect` shows in the trace, so a trace that shows
/// nothing off loopback is known to have been watching.
const CONTROL_PEER: &str = "127.0.0.1:9";

/// The namespace, or why the test cannot run.
fn namespace(tag: &str) -> Option<Netns> {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace is not installed (scripts/test.sh installs it)");
        return None;
    }
    match Netns::create(tag) {
        Ok(ns) => Some(ns),
        Err(e) => {
            eprintln!("SKIPPED: needs a network namespace of its own (run as root): {e}");
            None
        }
    }
}

/// `shoal ARGS` inside `ns` under strace (the trace goes to `trace`), local-only, with DHT
/// nodes off loopback offered to it.
fn traced_shoal(ns: &Netns, trace: &Path, args: &[&str]) -> Command {
    let mut cmd = ns.command("env");
    cmd.args(["SHOAL_LOCAL_ONLY=1", &format!("SHOAL_DHT_BOOTSTRAP={DHT_NODES}")]);
    cmd.args(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-e", "signal=none", "-o"]);
    cmd.arg(trace).arg(shoal_bin()).args(args);
    cmd
}

/// Stops the traced `shoal` (the child of strace) with SIGTERM and waits until strace has
/// exited, so the trace is complete.
fn stop_traced(proc: &mut Proc) {
    let strace = proc.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap_or_default();
    for pid in children.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()) {
        // SAFETY: kill(2) on the process strace started for us; no memory is touched.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if let Err(e) = proc.wait_exit(TIMEOUT) {
        panic!("{e}\n{}", proc.logs());
    }
}

/// Every socket destination in an strace log: (the line, the address).
fn destinations(trace: &str) -> Vec<(&str, IpAddr)> {
    let mut out = Vec::new();
    for line in trace.lines() {
        for (open, close) in [("inet_addr(\"", '"'), ("inet_pton(AF_INET6, \"", '"')] {
            let mut rest = line;
            while let Some(at) = rest.find(open) {
                rest = &rest[at + open.len()..];
                let Some(end) = rest.find(close) else { break };
                let text = &rest[..end];
                let ip = text.parse().unwrap_or_else(|_| panic!("unparsable address {text:?} in: {line}"));
                out.push((line, ip));
            }
        }
    }
    out
}

/// Whether an address is loopback (an IPv4-mapped loopback included).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Asserts the trace shows the control peer and nothing off loopback.
fn assert_loopback_only(trace_path: &Path) {
    let trace = std::fs::read_to_string(trace_path).expect("the trace was written");
    let dests = destinations(&trace);
    let off: Vec<&str> = dests.iter().filter(|(_, ip)| !is_loopback(*ip)).map(|(l, _)| *l).collect();
    assert!(off.is_empty(), "sent off loopback ({} time(s)):\n{}", off.len(), off.join("\n"));
    assert!(
        dests.iter().any(|(l, ip)| ip.to_string() == "127.0.0.1" && l.contains("htons(9)")),
        "the trace does not show the dial of the control peer {CONTROL_PEER}: it saw nothing\n{trace}"
    );
}

/// Whether the trace (so far) shows the dial of the control peer.
fn control_dialled(trace_path: &Path) -> bool {
    let trace = std::fs::read_to_string(trace_path).unwrap_or_default();
    destinations(&trace).iter().any(|(l, ip)| ip.to_string() == "127.0.0.1" && l.contains("htons(9)"))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn strace_parsing_finds_every_destination() {
    let trace = r#"12 connect(3, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("93.184.216.34")}, 16) = -1 ENETUNREACH
12 connect(4, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT
13 sendto(4, "x", 1, 0, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 1
13 connect(5, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28 <unfinished ...>"#;
    let found: Vec<String> = destinations(trace).iter().map(|(_, ip)| ip.to_string()).collect();
    assert_eq!(found, ["93.184.216.34", "::ffff:127.0.0.1", "2001:db8::1"]);
    let off: Vec<bool> = destinations(trace).iter().map(|(_, ip)| is_loopback(*ip)).collect();
    assert_eq!(off, [false, true, false]);
}

#[test]
fn shoal_download_sends_nothing_off_loopback() {
    let Some(ns) = namespace("local-dl") else { return };
    let td = TestDir::new("local-only-download");
    let src = td.dir("src");
    let content = shoal_tests::data::single_file(&src, "payload.bin", 256 << 10, 3);
    let torrent = td.join("payload.torrent");
    let trackers: Vec<String> = TRACKERS.iter().map(|t| t.to_string()).collect();
    shoal::create(&td, &content, &torrent, &trackers, 64 << 10);

    let trace = td.join("download.strace");
    let out = td.dir("out");
    let mut args = vec!["download", path(&torrent), "-o", path(&out), "--runtime", "tokio", "--listen-port", "6881"];
    for p in PEERS.iter().chain([&CONTROL_PEER]) {
        args.extend(["--peer", p]);
    }
    let mut dl = Proc::spawn("shoal_download", traced_shoal(&ns, &trace, &args), &td.logs(), Duration::from_secs(10));
    // Every tracker has been tried (and refused), and the peers dialled.
    for url in TRACKERS {
        dl.wait_stderr(&format!("an error for tracker {url}"), TIMEOUT, |s| s.contains(&format!("tracker {url}: ")));
    }
    if let Err(e) = wait_for("the control peer to be dialled", TIMEOUT, || control_dialled(&trace).then_some(())) {
        panic!("{e}\n{}", dl.logs());
    }
    stop_traced(&mut dl);
    assert_loopback_only(&trace);
    // And the user is told why.
    let stderr = dl.stderr();
    for url in TRACKERS {
        let line = stderr.lines().find(|l| l.contains(&format!("tracker {url}: "))).expect("seen above");
        assert!(line.contains("refused by local-only mode"), "tracker {url} was not refused by the policy: {line}");
    }
}

/// A `shoal daemon` inside the namespace under strace, and an HTTP client in the namespace.
struct TracedDaemon {
    proc: Proc,
    port: u16,
}

const KEY: &str = "local-only-test-key";

impl TracedDaemon {
    fn start(ns: &Netns, td: &TestDir, trace: &Path) -> TracedDaemon {
        let state = td.dir("state");
        let args = ["daemon", "--state-dir", path(&state), "--http-port", "0", "--api-key", KEY];
        let mut cmd = traced_shoal(ns, trace, &args);
        for var in ["TSTATEDIR", "CORE_API_PORT", "CORE_API_KEY"] {
            cmd.env_remove(var);
        }
        let mut proc = Proc::spawn("shoal_daemon", cmd, &td.logs(), Duration::from_secs(10));
        let marker = "REST API on http://127.0.0.1:";
        proc.wait_stderr("the REST port", TIMEOUT, |s| s.split(marker).nth(1).is_some_and(|r| r.contains(' ')));
        let stderr = proc.stderr();
        let rest = stderr.split(marker).nth(1).expect("seen above");
        let port = rest.split(' ').next().and_then(|p| p.parse().ok()).expect("a port number");
        TracedDaemon { proc, port }
    }

    /// `method path` with a JSON body, sent from inside `ns`: (status, JSON answer).
    fn call(&self, ns: &Netns, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let method = method.to_string();
        ns.run(move || {
            let agent: ureq::Agent =
                ureq::Agent::config_builder().http_status_as_error(false).proxy(None).build().into();
            let req = ureq::http::Request::builder().method(method.as_str()).uri(&url).header("X-Api-Key", KEY);
            let result = match body {
                Some(b) => agent.run(req.body(b.to_string()).expect("valid request")),
                None => agent.run(req.body(()).expect("valid request")),
            };
            let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        })
    }
}

#[test]
fn shoal_daemon_sends_nothing_off_loopback() {
    let Some(ns) = namespace("local-daemon") else { return };
    let td = TestDir::new("local-only-daemon");
    let trace = td.join("daemon.strace");
    let mut daemon = TracedDaemon::start(&ns, &td, &trace);
    let dest: PathBuf = td.dir("downloads");

    // A magnet naming trackers and peers off loopback (and the control peer).
    let mut link = Link::new(InfoHash([0x5a; 20])).name("local-only");
    for t in TRACKERS {
        link = link.tracker(t);
    }
    for p in PEERS.iter().chain([&CONTROL_PEER]) {
        link = link.peer(p.parse::<SocketAddr>().expect("a socket address"));
    }
    let (status, answer) = daemon.call(
        &ns,
        "PUT",
        "/downloads",
        Some(json!({"uri": link.to_string(), "destination": dest, "anon_hops": 0, "safe_seeding": 0})),
    );
    assert_eq!(status, 200, "PUT /downloads (magnet): {answer}");
    let ih = answer["infohash"].as_str().expect("an infohash").to_string();

    // A torrent file to fetch from off loopback: refused, and said so.
    let (status, answer) = daemon.call(
        &ns,
        "PUT",
        "/downloads",
        Some(json!({"uri": "http://93.184.216.34/x.torrent", "destination": dest})),
    );
    let fetch_error = (status, answer.to_string());

    // Every tracker tried, the control peer dialled.
    let tried = wait_for("every tracker of the magnet to have been tried", TIMEOUT, || {
        let (_, list) = daemon.call(&ns, "GET", "/downloads", None);
        let dl = list["downloads"].as_array()?.iter().find(|d| d["infohash"] == ih.as_str())?.clone();
        let statuses: Vec<String> = TRACKERS
            .iter()
            .map(|url| {
                shoal_tests::daemon::tracker_entry(&dl, url).map_or("missing".into(), |t| t["status"].to_string())
            })
            .collect();
        statuses.iter().all(|s| s != "\"Not contacted yet\"" && s != "missing").then_some(statuses)
    });
    if let Err(e) = tried {
        panic!("{e}\n{}", daemon.proc.logs());
    }
    if let Err(e) = wait_for("the control peer to be dialled", TIMEOUT, || control_dialled(&trace).then_some(())) {
        panic!("{e}\n{}", daemon.proc.logs());
    }
    stop_traced(&mut daemon.proc);
    assert_loopback_only(&trace);
    // And the client is told why.
    let (status, error) = fetch_error;
    assert_eq!(status, 500, "PUT /downloads (http:): {error}");
    assert!(error.contains("refused by local-only mode: 93.184.216.34:80"), "unexpected error: {error}");
}
