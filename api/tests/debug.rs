//! `/debug/*` over real HTTP: each operation of §7.1 answers with its sample's shape, and with
//! real data about the daemon process, checked against `/proc/<pid>` from outside: its open
//! files and descriptors, its sockets (and not the test's), its threads, its resident memory
//! sampled every 5 s, and its own log lines. The API key shows in no answer and no log line,
//! wherever the client put it (Tribler's `/debug/threads` leaks it).
//!
//! Waiting is polling with a deadline, never a fixed sleep.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{events, request, start, Daemon, Opts, Resp, TempDir};
use serde_json::{json, Value};

/// Unlike any other string the daemon could print.
const KEY: &str = "dbg-key-5f1c9e7a2b";

fn daemon(state: &Path, env: Vec<(&str, String)>) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], env, ..Opts::default() })
}

fn call(d: &Daemon, method: &str, path: &str) -> Resp {
    request(d, method, path, &[("X-Api-Key", KEY)], None)
}

fn ok(d: &Daemon, path: &str) -> Value {
    let r = call(d, "GET", path);
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.content_type, "application/json");
    r.json()
}

fn pid(d: &Daemon) -> u32 {
    d.child.as_ref().unwrap().id()
}

/// Polls `look` until it returns `Some`, for at most `within`.
fn wait_until<T>(what: &str, within: Duration, mut look: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = look() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The answer with every list cut to its first item: how many files, sockets, threads and
/// samples there are depends on the moment; the shape of one does not.
fn first_items(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), first_items(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(first_items).collect()),
        other => other.clone(),
    }
}

#[test]
fn shapes_of_every_operation() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"), Vec::new());
    let v = first_items(&ok(&d, "/debug/open_files"));
    insta::assert_json_snapshot!("open_files", v, {".open_files[].path" => "[path]", ".open_files[].fd" => "[fd]"});
    let v = first_items(&ok(&d, "/debug/open_sockets"));
    insta::assert_json_snapshot!("open_sockets", v, {
        ".open_sockets[].family" => "[family]", ".open_sockets[].status" => "[status]",
        ".open_sockets[].laddr" => "[laddr]", ".open_sockets[].raddr" => "[raddr]", ".open_sockets[].type" => "[type]",
    });
    let v = first_items(&ok(&d, "/debug/threads"));
    insta::assert_json_snapshot!("threads", v, {
        ".threads[].thread_id" => "[tid]", ".threads[].thread_name" => "[name]", ".threads[].frames[]" => "[frame]",
    });
    let v = first_items(&ok(&d, "/debug/cpu/history"));
    insta::assert_json_snapshot!("cpu_history", v, {".cpu_history[].time" => "[time]", ".cpu_history[].cpu" => "[cpu]"});
    let v = first_items(&ok(&d, "/debug/memory/history"));
    insta::assert_json_snapshot!("memory_history", v, {
        ".memory_history[].time" => "[time]", ".memory_history[].mem" => "[mem]",
    });
    insta::assert_json_snapshot!("log", ok(&d, "/debug/log?process=core&max_lines=5"), {".content" => "[content]"});
    insta::assert_json_snapshot!("log_gui", ok(&d, "/debug/log?process=gui&max_lines=5"));
    insta::assert_json_snapshot!("profiler", ok(&d, "/debug/profiler"));
    insta::assert_json_snapshot!("circuits_slots", ok(&d, "/debug/circuits/slots"));
    let r = call(&d, "POST", "/debug/core_test_exception");
    assert_eq!(r.status, 200);
    insta::assert_json_snapshot!("core_test_exception", r.json());

    // Refusals: what cannot have an effect says so, and bad input is a 400 naming it.
    let mut refused = serde_json::Map::new();
    for (method, path) in [
        ("PUT", "/debug/profiler"),
        ("DELETE", "/debug/profiler"),
        ("GET", "/debug/log?max_lines=abc"),
        ("GET", "/debug/log?max_lines=1.5"),
        ("GET", "/debug/log?process=../../etc/passwd&max_lines=5"),
        ("GET", "/debug/memory/dump"),
    ] {
        let r = call(&d, method, path);
        refused.insert(format!("{method} {path}"), json!({"status": r.status, "body": r.json()}));
    }
    insta::assert_json_snapshot!("refusals", refused);
    // The refused profiler is still stopped.
    assert_eq!(ok(&d, "/debug/profiler"), json!({"state": "STOPPED"}));
}

#[test]
fn open_files_and_sockets_are_the_daemons_own() {
    let tmp = TempDir::new();
    let state = tmp.join("state");
    let d = daemon(&state, Vec::new());
    let pid = pid(&d);

    let files = ok(&d, "/debug/open_files")["open_files"].as_array().unwrap().clone();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let state = state.canonicalize().unwrap();
    for held in ["lock", "sqlite/metadata.db"] {
        let want = state.join(held);
        assert!(paths.contains(&want.to_str().unwrap()), "{} not among {paths:#?}", want.display());
    }
    // Each descriptor is the daemon's and leads to the file named (the state files stay open).
    for f in &files {
        let path = f["path"].as_str().unwrap();
        if path.starts_with(state.to_str().unwrap()) {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{}", f["fd"])).unwrap();
            assert_eq!(link.to_str().unwrap(), path);
        }
    }

    // A socket of this test's process is not the daemon's, however alike.
    let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = ours.local_addr().unwrap().to_string();
    let sockets = ok(&d, "/debug/open_sockets")["open_sockets"].as_array().unwrap().clone();
    let rest = format!("127.0.0.1:{}", d.port);
    let has = |status: &str, laddr: &str, raddr: Option<&str>| {
        sockets.iter().any(|s| {
            s["family"] == 2
                && s["type"] == 1
                && s["status"] == status
                && s["laddr"] == laddr
                && raddr.is_none_or(|r| s["raddr"] == r)
        })
    };
    assert!(has("LISTEN", &rest, Some("-")), "REST listener missing: {sockets:#?}");
    // The connection carrying this very request.
    assert!(has("ESTABLISHED", &rest, None), "this request's connection missing: {sockets:#?}");
    assert!(!sockets.iter().any(|s| s["laddr"] == ours.as_str()), "the test's own socket listed: {sockets:#?}");
    // The peer listeners the daemon reported, on both loopbacks (SHOAL_LOCAL_ONLY).
    let peers = d.log.iter().find_map(|l| l.split("peers on ").nth(1)).expect("the peers line");
    for addr in peers.split(", ") {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let (family, laddr) = match addr {
            std::net::SocketAddr::V4(a) => (2, a.to_string()),
            std::net::SocketAddr::V6(a) => (10, format!("{}:{}", a.ip(), a.port())),
        };
        let listed = sockets.iter().any(|s| {
            s["family"] == family && s["type"] == 1 && s["status"] == "LISTEN" && s["laddr"] == laddr.as_str()
        });
        assert!(listed, "peer listener {laddr} missing: {sockets:#?}");
    }
    let udp = sockets.iter().any(|s| s["type"] == 2 && s["status"] == "NONE" && s["raddr"] == "-");
    assert!(udp, "no UDP socket: {sockets:#?}");
}

#[test]
fn threads_are_the_daemons() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"), Vec::new());
    let pid = pid(&d);
    let threads = ok(&d, "/debug/threads")["threads"].as_array().unwrap().clone();
    assert_eq!(threads[0]["thread_id"], pid, "main thread first: {threads:#?}");
    assert_eq!(threads[0]["thread_name"], "shoal");
    let names: Vec<&str> = threads.iter().map(|t| t["thread_name"].as_str().unwrap()).collect();
    assert!(names.contains(&"async-io"), "{names:?}");
    for t in &threads {
        // Threads of a blocking pool may have ended since; those still there match.
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/task/{}/comm", t["thread_id"])) {
            assert_eq!(comm.trim_end(), t["thread_name"].as_str().unwrap());
        }
        let frames: Vec<&str> = t["frames"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(frames[0].starts_with("state: ") && frames[1].starts_with("cpu time: user "), "{frames:?}");
    }
}

/// Resident bytes of `pid`, as the test reads them (`VmRSS`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn cpu_and_memory_are_sampled_every_5_s() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"), Vec::new());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    // A first sample is taken at start.
    let mem = ok(&d, "/debug/memory/history")["memory_history"].as_array().unwrap().clone();
    assert_eq!(mem.len(), 1, "{mem:?}");
    let t0 = mem[0]["time"].as_f64().unwrap();
    assert!((now - t0).abs() < 30.0, "sample time {t0}, now {now}");
    let sampled = mem[0]["mem"].as_u64().unwrap();
    let actual = rss(pid(&d));
    assert!(sampled > actual / 3 && sampled < actual * 3, "sampled {sampled} B, resident now {actual} B");

    // The next one 5 s later, the same instants in both histories.
    let cpu = wait_until("a second sample", Duration::from_secs(15), || {
        let v = ok(&d, "/debug/cpu/history")["cpu_history"].as_array().unwrap().clone();
        (v.len() >= 2).then_some(v)
    });
    let mem = ok(&d, "/debug/memory/history")["memory_history"].as_array().unwrap().clone();
    let times = |v: &[Value]| v.iter().map(|s| s["time"].as_f64().unwrap()).collect::<Vec<_>>();
    assert_eq!(times(&cpu)[..2], times(&mem)[..2]);
    let step = times(&cpu)[1] - times(&cpu)[0];
    assert!((4.0..7.0).contains(&step), "samples {step} s apart");
    for s in &cpu {
        let c = s["cpu"].as_f64().unwrap();
        assert!(c >= 0.0 && (c * 10.0).fract() == 0.0, "cpu {c}: percent with one decimal");
    }
}

#[test]
fn log_is_the_daemons_own_with_max_lines() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"), Vec::new());
    // The lines on stderr up to "REST API on", exactly as written there.
    let all = ok(&d, "/debug/log?max_lines=10000");
    assert_eq!(all["max_lines"], 10000);
    let content = all["content"].as_str().unwrap();
    let lines: Vec<&str> = content.lines().collect();
    assert!(lines.len() >= d.log.len(), "{lines:#?}");
    assert_eq!(lines[..d.log.len()], d.log.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    assert!(lines.iter().any(|l| l.contains("REST API on http://")), "{content}");

    // Tribler's rules: the last N lines, at least one, 100 by default.
    let one = ok(&d, "/debug/log?max_lines=1");
    assert_eq!(one["max_lines"], 1);
    assert_eq!(one["content"], *lines.last().unwrap());
    let zero = ok(&d, "/debug/log?max_lines=0");
    assert_eq!((zero["max_lines"].clone(), zero["content"].clone()), (json!(1), json!(lines.last().unwrap())));
    assert_eq!(ok(&d, "/debug/log")["max_lines"], 100);
    let two = ok(&d, "/debug/log?max_lines=2");
    assert_eq!(two["content"].as_str().unwrap().lines().count(), 2.min(lines.len()));

    // A line logged now shows up at the end.
    assert_eq!(call(&d, "POST", "/debug/core_test_exception").status, 200);
    wait_until("the new log line", Duration::from_secs(10), || {
        let last = ok(&d, "/debug/log?max_lines=5")["content"].as_str().unwrap().to_string();
        last.contains("test exception requested").then_some(())
    });
}

#[test]
fn core_test_exception_asks_the_gui_to_stop_and_the_daemon_goes_on() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"), Vec::new());
    let (_, mut sse) = events(&d, KEY);
    assert_eq!(sse.next().unwrap()["topic"], "events_start");
    assert_eq!(call(&d, "POST", "/debug/core_test_exception").json(), json!({"success": true}));
    let e = sse.next().unwrap();
    assert_eq!(e["topic"], "tribler_exception", "{e}");
    assert!(e.get("args").is_none(), "{e}");
    let error = &e["kwargs"]["error"];
    assert_eq!(error["type"], "TriblerCoreTestException");
    assert_eq!(error["text"], "Tribler Core Test Exception");
    assert_eq!(error["should_stop"], true);
    assert_eq!(call(&d, "GET", "/settings").status, 200);
    d.shutdown(KEY);
}

#[test]
fn the_api_key_shows_in_no_answer_and_no_log_line() {
    let tmp = TempDir::new();
    // Every log line there is, from every crate.
    let d = daemon(&tmp.join("state"), vec![("RUST_LOG", "trace".into())]);
    // The key where clients put it: header, query, cookie; also in a path, in a refused
    // request, and in a wrong key's place.
    let cookie = format!("api_key={KEY}");
    assert_eq!(request(&d, "GET", &format!("/settings?apikey={KEY}"), &[], None).status, 200);
    assert_eq!(request(&d, "GET", "/downloads", &[("Cookie", &cookie)], None).status, 200);
    assert_eq!(call(&d, "GET", &format!("/no/such/{KEY}")).status, 404);
    assert_eq!(call(&d, "GET", &format!("/debug/log?process={KEY}")).status, 400);
    assert_eq!(request(&d, "GET", "/settings", &[("X-Api-Key", &format!("{KEY}x"))], None).status, 401);

    let mut answers = Vec::new();
    for (method, path) in [
        ("GET", "/debug/open_files"),
        ("GET", "/debug/open_sockets"),
        ("GET", "/debug/threads"),
        ("GET", "/debug/cpu/history"),
        ("GET", "/debug/memory/history"),
        ("GET", "/debug/profiler"),
        ("PUT", "/debug/profiler"),
        ("DELETE", "/debug/profiler"),
        ("POST", "/debug/core_test_exception"),
        ("GET", "/debug/circuits/slots"),
        ("GET", "/debug/memory/dump"),
        ("GET", "/debug/log?process=gui&max_lines=100000"),
        ("GET", "/debug/log?max_lines=100000"),
    ] {
        let r = call(&d, method, path);
        answers.push((format!("{method} {path}"), String::from_utf8(r.body).unwrap()));
    }
    let log = &answers.last().unwrap().1;
    assert!(log.contains("REST API on"), "the log is there: {log}");
    for (what, body) in &answers {
        assert!(!body.contains(KEY), "{what} shows the API key: {body}");
    }
    for line in &d.log {
        assert!(!line.contains(KEY), "stderr shows the API key: {line}");
    }
    // The key is in the daemon's command line, which nothing above may show.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid(&d))).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains(KEY));
}
