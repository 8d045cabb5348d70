//! A real tracker (opentracker) on loopback, and a tiny HTTP client to query it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::bencode::{decode, InfoHash, Value};
use crate::proc::Proc;
use crate::wait::{free_port, loopback, wait_for, wait_port_open};
use crate::workdir::TestDir;

/// How long opentracker gets to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// An opentracker process serving HTTP and UDP on one loopback port.
///
/// Debian's opentracker is whitelist-only, so every info-hash a test uses must be allowed
/// (at start or with [`Opentracker::allow`]). Started as root it chroots into its directory and
/// drops to `nobody`, so that directory and the whitelist are made world-readable.
pub struct Opentracker {
    port: u16,
    dir: PathBuf,
    proc: Proc,
}

impl Opentracker {
    /// Starts a tracker in the test's `tracker/` dir that allows `hashes`; waits until it
    /// listens and accepts them.
    pub fn start(td: &TestDir, hashes: &[InfoHash]) -> Opentracker {
        let dir = &td.dir("tracker");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("cannot chmod tracker dir");
        let whitelist = dir.join("whitelist.txt");
        let list: String = hashes.iter().map(|h| format!("{}\n", h.hex())).collect();
        std::fs::write(&whitelist, list).expect("cannot write whitelist");
        std::fs::set_permissions(&whitelist, std::fs::Permissions::from_mode(0o644)).expect("cannot chmod whitelist");
        // The whitelist path is relative: opentracker reads it after chrooting into rootdir.
        let conf = dir.join("opentracker.conf");
        std::fs::write(
            &conf,
            format!("tracker.rootdir {}\ntracker.user nobody\naccess.whitelist whitelist.txt\n", dir.display()),
        )
        .expect("cannot write opentracker.conf");

        let port = free_port();
        let mut cmd = Command::new("opentracker");
        cmd.arg("-f").arg(&conf);
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-P", &port.to_string()]);
        cmd.current_dir(dir);
        let mut proc = Proc::spawn("opentracker", cmd, &td.logs(), Duration::from_millis(200));
        let listening = wait_for("opentracker to listen", START_TIMEOUT, || {
            if let Some(status) = proc.try_status() {
                return Some(Err(format!("opentracker exited early with {status}")));
            }
            wait_port_open(port, Duration::from_millis(50)).ok().map(Ok)
        });
        match listening {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => panic!("{e}\n{}", proc.logs()),
        }
        let tracker = Opentracker { port, dir: dir.to_path_buf(), proc };
        for h in hashes {
            tracker.wait_allowed(*h);
        }
        tracker
    }

    /// The port (TCP for HTTP, UDP for the UDP protocol).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/announce`
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// `udp://127.0.0.1:PORT/announce`
    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }

    /// The tracker process (for its logs).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Adds `hash` to the whitelist, reloads it with SIGHUP and waits until it is accepted.
    pub fn allow(&self, hash: InfoHash) {
        let path = self.dir.join("whitelist.txt");
        let mut list = std::fs::read_to_string(&path).expect("cannot read whitelist");
        list.push_str(&format!("{}\n", hash.hex()));
        std::fs::write(&path, list).expect("cannot write whitelist");
        self.proc.signal(libc::SIGHUP);
        self.wait_allowed(hash);
    }

    /// Whether the tracker accepts announces for `hash` now.
    ///
    /// opentracker skips the whitelist for `stopped` events, so the probe is a real announce
    /// of a made-up peer (port 1), withdrawn at once with `stopped`. Call it only while no
    /// client is announcing the torrent.
    pub fn is_allowed(&self, hash: InfoHash) -> Result<bool, String> {
        let query = |event: &str| {
            format!(
                "/announce?info_hash={}&peer_id=-SHOALPROBE-00000000&port=1&uploaded=0\
                 &downloaded=0&left=0&compact=1&numwant=0{event}",
                hash.url_encoded()
            )
        };
        let allowed = self.get(&query(""))?.get("failure reason").is_none();
        if allowed {
            self.get(&query("&event=stopped"))?;
        }
        Ok(allowed)
    }

    /// Waits until announces for `hash` are accepted.
    fn wait_allowed(&self, hash: InfoHash) {
        let what = format!("opentracker to accept {hash}");
        let res = wait_for(&what, START_TIMEOUT, || matches!(self.is_allowed(hash), Ok(true)).then_some(()));
        if let Err(e) = res {
            panic!("{e}\n{}", self.proc.logs());
        }
    }

    /// Scrapes `hash`: `(complete, incomplete)` peer counts, `(0, 0)` if the swarm is empty.
    pub fn scrape(&self, hash: InfoHash) -> Result<(i64, i64), String> {
        let v = self.get(&format!("/scrape?info_hash={}", hash.url_encoded()))?;
        let files = v.get("files").ok_or("scrape reply has no files")?;
        let Value::Dict(map) = files else {
            return Err("scrape files is not a dict".into());
        };
        Ok(match map.get(&hash.0[..]) {
            None => (0, 0),
            Some(entry) => (
                entry.get("complete").and_then(Value::as_int).unwrap_or(0),
                entry.get("incomplete").and_then(Value::as_int).unwrap_or(0),
            ),
        })
    }

    /// Waits until the tracker lists at least `seeders` seeders and `leechers` leechers.
    pub fn wait_swarm(&self, hash: InfoHash, seeders: i64, leechers: i64, timeout: Duration) {
        let what = format!("tracker to list {seeders} seeders and {leechers} leechers of {hash}");
        let mut last = (0, 0);
        let res = wait_for(&what, timeout, || match self.scrape(hash) {
            Ok((s, l)) => {
                last = (s, l);
                (s >= seeders && l >= leechers).then_some(())
            }
            Err(_) => None,
        });
        if let Err(e) = res {
            panic!("{e} (last scrape: {last:?})");
        }
    }

    /// Waits until the tracker lists at least `n` peers of `hash`, seeders or not.
    pub fn wait_peers(&self, hash: InfoHash, n: i64, timeout: Duration) {
        let what = format!("tracker to list {n} peers of {hash}");
        let mut last = (0, 0);
        let res = wait_for(&what, timeout, || match self.scrape(hash) {
            Ok((s, l)) => {
                last = (s, l);
                (s + l >= n).then_some(())
            }
            Err(_) => None,
        });
        if let Err(e) = res {
            panic!("{e} (last scrape: {last:?})");
        }
    }

    /// Waits until the tracker lists no peer of `hash` (every peer has announced `stopped`).
    pub fn wait_swarm_empty(&self, hash: InfoHash, timeout: Duration) {
        let what = format!("every peer of {hash} to announce stopped");
        let mut last = (0, 0);
        let res = wait_for(&what, timeout, || match self.scrape(hash) {
            Ok((s, l)) => {
                last = (s, l);
                (s == 0 && l == 0).then_some(())
            }
            Err(_) => None,
        });
        if let Err(e) = res {
            panic!("{e} (last scrape: {last:?})");
        }
    }

    /// A GET on the tracker's HTTP port; returns the decoded bencoded body.
    fn get(&self, path_and_query: &str) -> Result<Value, String> {
        let mut s =
            TcpStream::connect_timeout(&loopback(self.port), Duration::from_secs(2)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
        write!(s, "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port)
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
        let split = reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of HTTP headers")?;
        decode(&reply[split + 4..])
    }
}
