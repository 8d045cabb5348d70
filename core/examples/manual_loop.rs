//! Drives the sans-IO engine from a hand-written loop with nothing but `std`: blocking sockets,
//! one reader thread per connection, `std::fs` for the files. A third runtime needs nothing
//! more from Shoal than this.
//!
//! ```text
//! cargo run -p shoal-core --example manual_loop -- FILE.torrent OUT_DIR PEER_IP:PORT
//! ```
//!
//! It downloads the torrent from that one peer (trackers are not contacted) and exits when
//! every piece is verified on disk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sha1::{Digest, Sha1};
use shoal_core::{
    AddTorrent, CloseReason, Config, ConnId, DiskError, DiskErrorKind, DiskJobKind, Engine, Event, FileSpan, Input,
    Instant, JobResult, Metainfo, Output, PeerIo, TransportError, UdpIo,
};

/// What a tracker request fails with here.
const TRACKERS_OFF: &str = "trackers are off in this example";

/// What the socket threads tell the loop: the engine's own [`Input`] when it owns its data,
/// else what the loop needs to build one (it borrows the bytes, and keeps the stream).
enum Msg {
    /// A connection is up: the loop keeps its writing half.
    Up(ConnId, TcpStream),
    /// Bytes from a peer, for [`Input::PeerBytes`].
    Bytes(ConnId, Vec<u8>),
    /// Anything else, as is.
    Engine(Input<'static>),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, torrent, out, peer] = args.as_slice() else {
        return Err("usage: manual_loop FILE.torrent OUT_DIR PEER_IP:PORT".into());
    };
    let meta = Metainfo::from_bytes(&std::fs::read(torrent)?)?;
    let peer: SocketAddr = peer.parse()?;
    let paths: Vec<PathBuf> = meta.info.files.iter().map(|f| Path::new(out).join(f.relative_path())).collect();
    for (f, path) in meta.info.files.iter().zip(&paths) {
        if f.length == 0 && !f.is_pad() {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            File::create(path)?;
        }
    }

    // Time is an input: the engine's clock starts at zero when the loop does.
    let origin = std::time::Instant::now();
    let now = || Instant::from_micros(origin.elapsed().as_micros() as u64);
    let mut engine = Engine::new(Config::default(), 0x5eed, now());
    let mut params = AddTorrent::new(meta);
    params.peers = vec![peer];
    engine.add_torrent(params, now())?;

    let (tx, rx) = mpsc::channel::<Msg>();
    let mut conns: HashMap<ConnId, TcpStream> = HashMap::new();
    loop {
        // Drain every output after every input, then wait for the next input or the deadline.
        while let Some(output) = engine.poll_output() {
            match output {
                Output::Peer(PeerIo::Connect { conn, addr }) => {
                    let tx = tx.clone();
                    std::thread::spawn(move || match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
                        Ok(stream) => read_loop(conn, stream, tx),
                        Err(e) => {
                            let _ = tx.send(Msg::Engine(Input::Closed(conn, CloseReason::DialFailed(e.kind()))));
                        }
                    });
                }
                // Handing the engine an input while draining is allowed: its outputs join the
                // queue this loop is draining.
                Output::Peer(PeerIo::Send { conn, data }) => {
                    let sent = conns.get_mut(&conn).is_some_and(|s| s.write_all(&data).is_ok());
                    if sent {
                        engine.handle(Input::Sent(conn, data.len()), now());
                    }
                }
                // A torrent's peer closed is also reported, with why, as `Event::PeerClosed`.
                Output::Peer(PeerIo::Close { conn, .. }) => {
                    if let Some(s) = conns.remove(&conn) {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                }
                // Disk and hash work could go to a thread pool; inline is simplest.
                Output::Disk(job) => {
                    let result = match job.kind {
                        DiskJobKind::Write { spans, data, .. } => {
                            JobResult::Written { result: write(&paths, &spans, &data), data }
                        }
                        DiskJobKind::Read { spans, len, .. } => {
                            // Read the range in one piece, then lay it out as the engine asks.
                            let plain: Vec<_> = spans.iter().map(|p| p.span).collect();
                            JobResult::Read(
                                read(&paths, &plain)
                                    .map(|range| shoal_core::lay_out_read(&spans, len, &range).unwrap_or_default()),
                            )
                        }
                        DiskJobKind::Verify { spans, expected, .. } => {
                            JobResult::Verified(match read(&paths, &spans) {
                                Ok(data) => Ok(Sha1::digest(&data).as_slice() == expected),
                                Err(e) if e.kind == DiskErrorKind::NotFound => Ok(false),
                                Err(e) => Err(e),
                            })
                        }
                    };
                    engine.handle(Input::Job(job.id, result), now());
                }
                Output::Hash(job) => {
                    // The write is left to the engine: it follows as a `DiskJobKind::Write`.
                    let ok = Sha1::digest(&job.data).as_slice() == job.expected;
                    engine.handle(Input::Job(job.id, JobResult::Hashed { ok, data: job.data, written: None }), now());
                }
                // No trackers here: the peer comes from the command line.
                Output::Http { id, .. } => {
                    engine.handle(Input::Http(id, Err(TransportError::Failed(TRACKERS_OFF.into()))), now());
                }
                Output::Udp(UdpIo::Exchange { exchange, .. }) => {
                    engine.handle(Input::Exchange(exchange, Err(TransportError::Failed(TRACKERS_OFF.into()))), now());
                }
                Output::Udp(UdpIo::EndExchange { .. }) => {}
                // The DHT and LSD are never enabled here.
                Output::Udp(UdpIo::Dht { .. } | UdpIo::Lsd { .. }) | Output::Resolve { .. } => {}
                Output::Event(Event::Finished { .. }) => {
                    println!("done: every piece is verified in {out}");
                    return Ok(());
                }
                Output::Event(Event::Error { error, .. }) => return Err(error.into()),
                Output::Event(event) => println!("{event:?}"),
            }
        }
        // The engine always has a deadline until it is shut down, which this loop never asks.
        let wait = engine.poll_timeout().map_or(Duration::MAX, |t| t.saturating_duration_since(now()));
        match rx.recv_timeout(wait) {
            Ok(Msg::Up(conn, stream)) => {
                conns.insert(conn, stream);
                engine.handle(Input::Connected(conn), now());
            }
            Ok(Msg::Bytes(conn, data)) => engine.handle(Input::PeerBytes(conn, &data), now()),
            Ok(Msg::Engine(Input::Closed(conn, reason))) => {
                // A connection this loop closed itself is already forgotten by the engine.
                if conns.remove(&conn).is_some() {
                    engine.handle(Input::Closed(conn, reason), now());
                }
            }
            Ok(Msg::Engine(input)) => engine.handle(input, now()),
            Err(mpsc::RecvTimeoutError::Timeout) => engine.handle_timeout(now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("the loop holds a sender"),
        }
    }
}

/// Hands the loop a writing clone of the stream, then reads until the peer or we close it.
fn read_loop(conn: ConnId, mut stream: TcpStream, tx: mpsc::Sender<Msg>) {
    let writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(e) => {
            let _ = tx.send(Msg::Engine(Input::Closed(conn, CloseReason::Io(e.kind()))));
            return;
        }
    };
    let _ = tx.send(Msg::Up(conn, writer));
    let mut buf = vec![0u8; 64 * 1024];
    let reason = loop {
        match stream.read(&mut buf) {
            Ok(0) => break CloseReason::PeerClosed,
            Err(e) => break CloseReason::Io(e.kind()),
            Ok(n) => {
                if tx.send(Msg::Bytes(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    };
    let _ = tx.send(Msg::Engine(Input::Closed(conn, reason)));
}

fn write(paths: &[PathBuf], spans: &[FileSpan], data: &[u8]) -> Result<(), DiskError> {
    let mut pos = 0;
    for s in spans {
        let chunk = &data[pos..pos + s.len as usize];
        pos += s.len as usize;
        if s.pad {
            continue;
        }
        let path = &paths[s.file as usize];
        (|| {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
            let mut f = OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
            f.seek(SeekFrom::Start(s.offset))?;
            f.write_all(chunk)
        })()
        .map_err(|e| disk_error(&e, path))?;
    }
    Ok(())
}

fn read(paths: &[PathBuf], spans: &[FileSpan]) -> Result<Vec<u8>, DiskError> {
    let mut data = Vec::new();
    for s in spans {
        let start = data.len();
        data.resize(start + s.len as usize, 0);
        if s.pad {
            continue;
        }
        let path = &paths[s.file as usize];
        (|| {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(s.offset))?;
            f.read_exact(&mut data[start..])
        })()
        .map_err(|e| disk_error(&e, path))?;
    }
    Ok(data)
}

fn disk_error(e: &std::io::Error, path: &Path) -> DiskError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof => DiskErrorKind::NotFound,
        _ => DiskErrorKind::Other,
    };
    DiskError { kind, message: format!("{}: {e}", path.display()) }
}
