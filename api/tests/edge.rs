//! The daemon's edge under attack (issue #14): settings that must not be written over REST or
//! that do nothing, values the INI file cannot hold, a broken config file, the state
//! directory's modes and lock, browser requests (CSRF, DNS rebinding), malformed and oversized
//! request heads, idle-socket and descriptor floods, special files behind `file:` URIs, and
//! the memory a burst of large requests leaves behind.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "edgekey";

fn daemon_with(state: &Path, nofile: Option<u64>) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], nofile, ..Opts::default() })
}

/// Sends raw bytes and returns the status and body of the answer (`None`: the connection was
/// closed without a status line).
fn raw(port: u16, bytes: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = s.write_all(bytes);
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    if r.read_line(&mut status_line).unwrap_or(0) == 0 {
        return None;
    }
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` with these extra header lines.
fn raw_get(d: &Daemon, path: &str, headers: &str) -> Option<(u16, String)> {
    raw(d.port, format!("GET {path} HTTP/1.1\r\nX-Api-Key: {KEY}\r\n{headers}Connection: close\r\n\r\n").as_bytes())
}

fn settings(d: &Daemon) -> Value {
    let r = get(d, "/settings", KEY);
    assert_eq!(r.status, 200);
    r.json()["settings"].clone()
}

/// Polls `look` until it returns `Some`, for at most `within`.
fn wait_until<T>(what: &str, within: Duration, mut look: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = look() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A small torrent of random data in `dir`, made by `shoal create`.
fn small_torrent(dir: &Path) -> PathBuf {
    let data = dir.join("data.bin");
    std::fs::write(&data, (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let torrent = dir.join("data.torrent");
    let o =
        Command::new(env!("CARGO_BIN_EXE_shoal")).arg("create").arg(&data).arg("-o").arg(&torrent).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    torrent
}

/// `PUT /downloads` of `torrent`, then waits for its checkpoint in `<state>/dlcheckpoints`.
fn add_and_checkpoint(d: &Daemon, state: &Path, torrent: &Path, dest: &Path) -> Duration {
    let started = Instant::now();
    let body = json!({"uri": format!("file:{}", torrent.display()), "destination": dest}).to_string();
    let r = request(d, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ih = r.json()["infohash"].as_str().unwrap().to_string();
    let state_file = state.join("dlcheckpoints").join(format!("{ih}.state"));
    wait_until("the checkpoint", TIMEOUT, || state_file.is_file().then_some(()));
    started.elapsed()
}

#[test]
fn gui_settings_pass_and_settings_that_do_nothing_are_refused() {
    let state = TempDir::new();
    let d = daemon_with(&state.0, None);
    let s = settings(&d);

    // What Tribler's GUI posts on Save (reference §3.2), with the values it read.
    let pick = |section: &str, keys: &[&str]| -> Value {
        keys.iter().map(|k| (k.to_string(), s[section][*k].clone())).collect::<serde_json::Map<_, _>>().into()
    };
    let gui = json!({
        "download_defaults": pick("download_defaults", &["saveas", "seeding_mode", "seeding_ratio", "seeding_time",
            "number_hops", "anonymity_enabled", "safeseeding_enabled"]),
        "libtorrent": pick("libtorrent", &["proxy_type", "proxy_server", "proxy_auth", "utp", "max_connections_download",
            "max_upload_rate", "max_download_rate"]),
        "watch_folder": pick("watch_folder", &["enabled", "directory"]),
        "tunnel_community": {"exitnode_enabled": false},
        "resource_monitor": pick("resource_monitor", &["enabled", "cpu_priority"]),
        "ipv8": pick("ipv8", &["statistics"]),
        "general": pick("general", &["log_dir"]),
        "Tribler": {}, "trustchain": {}, "chant": {},
    });
    let r = post_settings(&d, KEY, &gui.to_string());
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})), "the GUI's Save payload");
    // The whole tree as read, `api` included (the port in force is not the configured 8085).
    let r = post_settings(&d, KEY, &s.to_string());
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})), "the tree GET /settings gave");

    let conf = state.join("triblerd.conf");
    let before = std::fs::read(&conf).unwrap();
    for (section, name, value) in [
        ("api", "key", json!("attackers-key")),
        ("api", "http_host", json!("0.0.0.0")),
        ("api", "http_port", json!(8086)),
        ("api", "https_enabled", json!(true)),
        ("api", "allowed_hosts", json!("evil.example")),
        ("watch_folder", "enabled", json!(true)),
        ("watch_folder", "directory", json!("/tmp")),
        ("download_defaults", "seeding_mode", json!("ratio")),
        ("download_defaults", "seeding_ratio", json!(1.5)),
        ("download_defaults", "seeding_time", json!(5)),
        // SOCKS4 and HTTP proxies are not implemented (SOCKS5 is, so 2 and 3 are taken).
        ("libtorrent", "proxy_type", json!(1)),
        ("libtorrent", "proxy_type", json!(4)),
        ("download_defaults", "number_hops", json!(1)),
        ("resource_monitor", "enabled", json!(false)),
    ] {
        let r = post_settings(&d, KEY, &json!({ section: { name: value } }).to_string());
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(r.status, 400, "{section}.{name} = {value}: {error}");
        assert!(error.contains(&format!("{section}.{name}")), "{section}.{name}: {error}");
    }
    // A value the INI file cannot hold (it stopped the next start): refused, nothing written.
    for saveas in ["\"abc", " /tmp/x", "/tmp/x "] {
        let r = post_settings(&d, KEY, &json!({"download_defaults": {"saveas": saveas}}).to_string());
        assert_eq!(r.status, 400, "{saveas:?}");
        assert!(r.json()["error"].as_str().unwrap().contains("download_defaults.saveas"));
    }
    assert_eq!(std::fs::read(&conf).unwrap(), before, "a refused POST changed triblerd.conf");
    assert_eq!(settings(&d)["api"]["key"], json!(KEY));
    d.shutdown(KEY);

    // The values that do have an effect are still written, and the daemon starts on them.
    let d = daemon_with(&state.0, None);
    let r = post_settings(&d, KEY, r#"{"download_defaults": {"saveas": "/tmp/shoal edge; #x=1 [y] é"}}"#);
    assert_eq!(r.status, 200);
    d.shutdown(KEY);
    let d = daemon_with(&state.0, None);
    assert_eq!(settings(&d)["download_defaults"]["saveas"], json!("/tmp/shoal edge; #x=1 [y] é"));
    d.shutdown(KEY);
}

#[test]
fn a_broken_config_file_starts_on_defaults_and_is_reported() {
    let state = TempDir::new();
    let bad = "[api]\nkey=oldkey\n[download_defaults]\nsaveas=\"abc\n";
    std::fs::write(state.join("triblerd.conf"), bad).unwrap();
    let d = daemon_with(&state.0, None);
    assert_eq!(settings(&d)["libtorrent"]["max_download_rate"], json!(0));
    let kept: Vec<PathBuf> = std::fs::read_dir(&state.0)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("triblerd.conf.bad-"))
        .collect();
    assert_eq!(kept.len(), 1, "the bad file is kept aside");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), bad);
    // Tribler's event, for the first client (nobody could listen while the file was read).
    let (_, mut sse) = events(&d, KEY);
    assert_eq!(sse.next().unwrap()["topic"], "events_start");
    let report = sse.next().unwrap();
    assert_eq!(report["topic"], "report_config_error", "{report}");
    assert!(report["args"][0].as_str().unwrap().contains("triblerd.conf"), "{report}");
    drop(sse);
    d.shutdown(KEY);
    // The next start is clean.
    let d = daemon_with(&state.0, None);
    assert!(!d.log.iter().any(|l| l.contains("default settings")), "{:?}", d.log);
    d.shutdown(KEY);
}

#[test]
fn state_dir_is_private_locked_and_cleaned() {
    let state = TempDir::new();
    // An install from before: world-readable key, crash leftovers.
    std::fs::set_permissions(&state.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(state.join("triblerd.conf"), format!("[api]\nkey={KEY}\n")).unwrap();
    std::fs::set_permissions(state.join("triblerd.conf"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all(state.join("dlcheckpoints")).unwrap();
    let strays = [state.join(".triblerd.conf.tmp4242-0"), state.join("dlcheckpoints/.0123.state.tmp4242-7")];
    for s in &strays {
        std::fs::write(s, b"half").unwrap();
    }
    let d = start(Opts { state: Some(&state.0), ..Opts::default() });
    assert_eq!(mode(&state.0), 0o700);
    assert_eq!(mode(&state.join("triblerd.conf")), 0o600);
    for s in &strays {
        assert!(!s.exists(), "{} left", s.display());
    }
    // A setting written now is private too.
    assert_eq!(post_settings(&d, KEY, r#"{"libtorrent": {"max_upload_rate": 5}}"#).status, 200);
    assert_eq!(mode(&state.join("triblerd.conf")), 0o600);

    // A second daemon on the same directory is refused, naming the holder.
    let mut second = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["daemon", "--http-port", "0", "--state-dir"])
        .arg(&state.0)
        .env("SHOAL_LOCAL_ONLY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_until("the second daemon to exit", TIMEOUT, || second.try_wait().unwrap());
    let mut err = String::new();
    second.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "the second daemon ran: {err}");
    let pid = d.child.as_ref().unwrap().id();
    assert!(err.contains("in use by another shoal daemon") && err.contains(&format!("PID {pid}")), "{err}");
    // The first is untouched.
    assert_eq!(get(&d, "/settings", KEY).status, 200);
    d.shutdown(KEY);
}

#[test]
fn browsers_cannot_forge_requests_or_rebind() {
    let state = TempDir::new();
    let d = daemon_with(&state.0, None);
    let own = format!("127.0.0.1:{}", d.port);
    // Tribler's GUI and scripts: an IP or localhost, no Origin.
    for host in [own.clone(), format!("localhost:{}", d.port), "[::1]".into()] {
        assert_eq!(raw_get(&d, "/settings", &format!("Host: {host}\r\n")).unwrap().0, 200, "{host}");
    }
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    for host in ["evil.example", &format!("evil.example:{}", d.port), "127.0.0.1.nip.io", "localhost.evil.example"] {
        let (status, body) = raw_get(&d, "/settings", &format!("Host: {host}\r\n")).unwrap();
        assert_eq!(status, 403, "{host}: {body}");
        assert!(!body.contains(KEY), "{body}");
    }
    // CSRF: JSON as text/plain with the key in a cookie, from another origin.
    let json = r#"{"libtorrent": {"max_upload_rate": 1}}"#;
    let forged = format!(
        "POST /settings HTTP/1.1\r\nHost: {own}\r\nOrigin: http://evil.example\r\nCookie: api_key={KEY}\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    assert_eq!(raw(d.port, forged.as_bytes()).unwrap().0, 403);
    let navigation = format!("Host: {own}\r\nSec-Fetch-Site: cross-site\r\nCookie: api_key={KEY}\r\n");
    assert_eq!(
        raw_get(&d, "/downloads/0000000000000000000000000000000000000000/files/select?path=a", &navigation).unwrap().0,
        403
    );
    assert_eq!(raw_get(&d, "/settings", &format!("Host: {own}\r\nOrigin: null\r\n")).unwrap().0, 403);
    // Our own origin (the Swagger page) is fine.
    assert_eq!(raw_get(&d, "/settings", &format!("Host: {own}\r\nOrigin: http://{own}\r\n")).unwrap().0, 200);
    assert_eq!(settings(&d)["libtorrent"]["max_upload_rate"], json!(0), "the forged POST was applied");
    // No CORS headers, ever.
    let r = request(&d, "GET", "/settings", &[("X-Api-Key", KEY), ("Origin", &format!("http://{own}"))], None);
    assert!(r.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control")));
    d.shutdown(KEY);
}

#[test]
fn bad_heads_get_a_status_and_slow_ones_are_closed() {
    let state = TempDir::new();
    let d = daemon_with(&state.0, None);
    let pad = "a".repeat(9000);
    let big = format!("GET /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {KEY}\r\nX-Pad: {pad}\r\n\r\n");
    assert_eq!(raw(d.port, big.as_bytes()).map(|r| r.0), Some(431));
    for (head, want) in [
        ("NONSENSE\r\n\r\n", 400),
        ("GET /settings HTTP/1.1\r\n\r\n", 400),
        ("GET /settings HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
        ("GET /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n", 400),
        ("BREW /settings HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    ] {
        assert_eq!(raw(d.port, head.as_bytes()).map(|r| r.0), Some(want), "{head:?}");
    }
    // The daemon still serves.
    assert_eq!(get(&d, "/settings", KEY).status, 200);

    // Slowloris: half a head, then silence: closed (well before async-h1's own 60 s).
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(b"GET /settings HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("the half-sent request was not closed within 25 s");
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(started.elapsed() < Duration::from_secs(25));
    d.shutdown(KEY);
}

/// Parses "peers on 127.0.0.1:P, …" from the daemon's log.
fn peer_port(d: &Daemon) -> u16 {
    let line = d.log.iter().find(|l| l.contains("peers on")).expect("no peers line");
    let addr = line.split("peers on ").nth(1).unwrap().split(',').next().unwrap().trim();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Opens up to `n` idle connections, from 25 threads at once, for at most 4 s (a listener
/// that stopped accepting has a full backlog: connections time out).
fn idle_sockets(port: u16, n: usize) -> Vec<TcpStream> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let threads: Vec<_> = (0..25)
        .map(|_| {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(4);
                let mut held = Vec::new();
                while held.len() < n / 25 && Instant::now() < deadline {
                    if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                        held.push(s);
                    }
                }
                held
            })
        })
        .collect();
    threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
}

/// Lets this test process hold a few thousand sockets.
fn raise_own_nofile() {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let raised = rustix::process::Rlimit { current: l.maximum, maximum: l.maximum };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).unwrap();
}

#[test]
fn idle_socket_flood_at_a_1024_descriptor_limit() {
    raise_own_nofile();
    let tmp = TempDir::new();
    let state = tmp.join("state");
    let d = daemon_with(&state, Some(1024));
    let torrent = small_torrent(&tmp.0);
    let flood = Instant::now();
    let rest = idle_sockets(d.port, 1100);
    let peers = idle_sockets(peer_port(&d), 1100);
    eprintln!(
        "holding {} idle REST sockets and {} idle peer sockets after {:?}",
        rest.len(),
        peers.len(),
        flood.elapsed()
    );
    // Well within the time a connection may take to send its head: every socket still counts.
    assert!(flood.elapsed() < Duration::from_secs(9), "the flood took {:?}", flood.elapsed());

    // REST answers at once, and a download can be added and checkpointed.
    let started = Instant::now();
    assert_eq!(get(&d, "/settings", KEY).status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "REST took {:?}", started.elapsed());
    let took = add_and_checkpoint(&d, &state, &torrent, &tmp.join("dl"));
    assert!(took < Duration::from_secs(10), "the checkpoint took {took:?}");
    assert!(d.log.iter().any(|l| l.contains("open file limit 1024")), "{:?}", d.log);
    drop((rest, peers));
    d.shutdown(KEY);
}

#[test]
fn busy_slots_answer_503_and_free_up() {
    raise_own_nofile();
    let tmp = TempDir::new();
    // 450 descriptors leave 24 REST connections (the daemon's fd budget, which it logs; a
    // daemon that logs none is held to 24 too).
    let d = daemon_with(&tmp.0, Some(450));
    let logged = d.log.iter().find_map(|l| l.split("up to ").nth(1)?.split(' ').next()?.parse().ok());
    let slots: usize = logged.unwrap_or(24);
    // Event streams are busy connections: they cannot be evicted like idle ones.
    let streams: Vec<_> = (0..slots).map(|_| events(&d, KEY)).collect();
    let (status, body) = raw_get(&d, "/settings", "Host: 127.0.0.1\r\n").expect("closed without a status");
    assert_eq!(status, 503, "{body}");
    drop(streams);
    wait_until("a free slot", TIMEOUT, || (get(&d, "/settings", KEY).status == 200).then_some(()));
    d.shutdown(KEY);
}

#[test]
fn special_files_behind_file_uris() {
    let tmp = TempDir::new();
    let state = tmp.join("state");
    let d = daemon_with(&state, None);
    // 520 readers of a FIFO nobody writes to must not stall adding a download.
    let fifo = tmp.join("fifo");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
    let torrent = small_torrent(&tmp.0);
    let path = format!("/torrentinfo?uri=file:{}", fifo.display());
    let readers: Vec<_> = (0..520)
        .map(|_| {
            let url = d.url(&path);
            std::thread::spawn(move || {
                agent().get(&url).header("X-Api-Key", KEY).call().map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    // REST slots may be briefly full of FIFO requests: retry on 503.
    let took = wait_until("PUT /downloads", TIMEOUT, || {
        let body = json!({"uri": format!("file:{}", torrent.display()), "destination": tmp.join("dl")}).to_string();
        let r = request(&d, "PUT", "/downloads", &[("X-Api-Key", KEY)], Some(body.as_bytes()));
        (r.status != 503).then_some(r)
    });
    assert_eq!(took.status, 200, "{}", String::from_utf8_lossy(&took.body));
    let ih = took.json()["infohash"].as_str().unwrap().to_string();
    let state_file = state.join("dlcheckpoints").join(format!("{ih}.state"));
    wait_until("the checkpoint", Duration::from_secs(10), || state_file.is_file().then_some(()));
    // Unblock any reader stuck in open() (a build without the fix) so the test can end.
    let _ = std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open(&fifo);
    let statuses: Vec<u16> = readers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 503),
        "{:?}",
        statuses.iter().filter(|s| **s != 400).collect::<Vec<_>>()
    );
    assert!(statuses.contains(&400));

    // /dev/zero was read up to the torrent size limit, and held.
    let r = get(&d, "/torrentinfo?uri=file:/dev/zero", KEY);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"].as_str().unwrap().contains("not a regular file"));

    d.shutdown(KEY);
}

/// Opening a FIFO for writing without waiting for a reader.
trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn memory_returns_after_a_burst_of_large_requests() {
    let state = TempDir::new();
    let d = daemon_with(&state.0, None);
    let pid = d.child.as_ref().unwrap().id();
    assert_eq!(get(&d, "/settings", KEY).status, 200);
    let before = rss_kib(pid);
    // Twenty bodies of 16 MiB (the limit): JSON padded with spaces.
    let mut body = br#"{"Tribler": {}}"#.to_vec();
    body.resize(16 << 20, b' ');
    for _ in 0..20 {
        assert_eq!(post_settings(&d, KEY, std::str::from_utf8(&body).unwrap()).status, 200);
    }
    for _ in 0..10 {
        get(&d, "/torrentinfo?uri=file:/dev/zero", KEY);
    }
    let peak = rss_kib(pid);
    // Freed memory goes back to the kernel (not necessarily at once).
    let bound = before + 48 * 1024;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss_kib(pid);
    while after >= bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = rss_kib(pid);
    }
    eprintln!("VmRSS before {before} KiB, right after the burst {peak} KiB, then {after} KiB");
    assert!(after < bound, "VmRSS stayed at {after} KiB (before: {before} KiB, after the burst: {peak} KiB)");
    d.shutdown(KEY);
}
