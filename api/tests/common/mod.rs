//! The harness shared by the daemon's REST tests: a temporary state directory, the real
//! `shoal daemon` binary on a free port, and an HTTP client that never treats a status as an
//! error.
//!
//! Each daemon runs with `--http-port 0` (it reports the port it bound on stderr) and
//! `SHOAL_LOCAL_ONLY=1`, on the runtime named by `SHOAL_TEST_RUNTIME` (`smol` or `tokio`;
//! unset: the default, smol). Nothing waits on a sleep: callers wait on the daemon's output, on
//! events and on process exit, each with a timeout.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "shoal-daemon-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside the directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Daemon {
    pub child: Option<Child>,
    pub port: u16,
    /// Lines of stderr up to the "REST API on" line.
    pub log: Vec<String>,
}

/// How to start a daemon: extra arguments and environment.
#[derive(Default)]
pub struct Opts<'a> {
    pub state: Option<&'a Path>,
    pub args: Vec<&'a str>,
    pub env: Vec<(&'a str, String)>,
    /// Leave `--http-port` out (to test `CORE_API_PORT` and the config).
    pub no_port_flag: bool,
    /// Start under this open file limit (soft and hard), like `prlimit --nofile=N:N`.
    pub nofile: Option<u64>,
}

// The child moves into `Daemon`, whose drop kills and waits for it.
#[allow(clippy::zombie_processes)]
pub fn start(opts: Opts) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.arg("daemon");
    if let Some(state) = opts.state {
        cmd.arg("--state-dir").arg(state);
    }
    if !opts.no_port_flag {
        cmd.args(["--http-port", "0"]);
    }
    cmd.args(&opts.args);
    for var in ["TSTATEDIR", "CORE_API_PORT", "CORE_API_KEY"] {
        cmd.env_remove(var);
    }
    cmd.env("SHOAL_LOCAL_ONLY", "1");
    // The same suite runs on both runtimes: scripts/test.sh runs it a second time with
    // SHOAL_TEST_RUNTIME=tokio.
    cmd.env_remove("SHOAL_RUNTIME");
    if let Ok(runtime) = std::env::var("SHOAL_TEST_RUNTIME") {
        cmd.args(["--runtime", &runtime]);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(n) = opts.nofile {
        use std::os::unix::process::CommandExt;
        let limit = rustix::process::Rlimit { current: Some(n), maximum: Some(n) };
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).map_err(Into::into)
            });
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start shoal daemon");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[daemon] {line}");
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    loop {
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not report its REST port ({e}); output: {log:#?}");
            }
        };
        log.push(line.clone());
        if let Some(rest) = line.split("REST API on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap();
            let port = addr.rsplit(':').next().unwrap().parse().unwrap();
            return Daemon { child: Some(child), port, log };
        }
    }
}

pub fn wait_exit(mut child: Child) -> ExitStatus {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("the daemon did not exit in time");
        }
    }
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// PUT /shutdown and wait for exit 0.
    pub fn shutdown(mut self, key: &str) {
        let r = request(&self, "PUT", "/shutdown", &[("X-Api-Key", key)], None);
        assert_eq!((r.status, r.json()), (200, json!({"shutdown": true})));
        let status = wait_exit(self.child.take().unwrap());
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).proxy(None).timeout_global(Some(TIMEOUT)).build().into()
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn request(d: &Daemon, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
    let req = ureq::http::Request::builder().method(method).uri(d.url(path));
    let req = headers.iter().fold(req, |r, (k, v)| r.header(*k, *v));
    let agent = agent();
    let result = match body {
        Some(b) => agent.run(req.body(b.to_vec()).unwrap()),
        None => agent.run(req.body(()).unwrap()),
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = if method == "HEAD" { Vec::new() } else { resp.body_mut().read_to_vec().unwrap() };
    Resp { status, content_type, headers, body }
}

pub fn get(d: &Daemon, path: &str, key: &str) -> Resp {
    request(d, "GET", path, &[("X-Api-Key", key)], None)
}

pub fn post_settings(d: &Daemon, key: &str, body: &str) -> Resp {
    request(
        d,
        "POST",
        "/settings",
        &[("X-Api-Key", key), ("Content-Type", "application/x-www-form-urlencoded")],
        Some(body.as_bytes()),
    )
}

/// Reads SSE frames from a stream; each must be one `data: …` line of JSON, as Tribler's GUI
/// reader requires (an SSE comment would open its crash dialog).
pub struct Sse(pub BufReader<Box<dyn Read + Send>>);

impl Sse {
    /// The next data frame's JSON, skipping `keep_alive` heartbeats; `None` at the end of the
    /// stream.
    pub fn next(&mut self) -> Option<Value> {
        let mut frame = String::new();
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            if line == "\n" {
                let json = frame.strip_prefix("data: ").unwrap_or_else(|| panic!("bad frame {frame:?}"));
                assert_eq!(json.matches('\n').count(), 1, "a frame of one line: {frame:?}");
                let v: Value = serde_json::from_str(json.trim_end()).unwrap();
                if v["topic"] != "keep_alive" {
                    return Some(v);
                }
                frame.clear();
            } else {
                frame.push_str(&line);
            }
        }
    }
}

pub fn events(d: &Daemon, key: &str) -> (Resp, Sse) {
    let resp = agent().get(d.url("/events")).header("X-Api-Key", key).call().unwrap();
    let headers =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let meta = Resp {
        status: resp.status().as_u16(),
        content_type: resp.headers().get("content-type").unwrap().to_str().unwrap().into(),
        headers,
        body: Vec::new(),
    };
    let reader: Box<dyn Read + Send> = Box::new(resp.into_body().into_reader());
    (meta, Sse(BufReader::new(reader)))
}
