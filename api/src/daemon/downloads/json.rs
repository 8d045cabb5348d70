//! The download object of `GET /downloads` (§4.3), with the field names of both Tribler
//! variants, and the file and peer objects inside it.

use data_encoding::BASE64;
use serde_json::{json, Map, Value};
use shoal_core::tracker::TrackerState;
use shoal_core::{Bitfield, FileLayout, Metainfo};
use shoal_core::{PeerStats, TorrentState, TorrentStats};

use super::{Download, Phase, Snapshot, NO_ANONYMITY};

/// `DLSTATUS_*` codes (§4.1). `EXIT_NODES` (9) is never reached: Shoal has no tunnels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    AllocatingDiskspace = 0,
    WaitingForHashcheck = 1,
    Hashchecking = 2,
    Downloading = 3,
    Seeding = 4,
    Stopped = 5,
    StoppedOnError = 6,
    Metadata = 7,
    Circuits = 8,
}

impl Status {
    /// The name Tribler puts in `status`.
    pub fn name(self) -> &'static str {
        match self {
            Status::AllocatingDiskspace => "ALLOCATING_DISKSPACE",
            Status::WaitingForHashcheck => "WAITING_FOR_HASHCHECK",
            Status::Hashchecking => "HASHCHECKING",
            Status::Downloading => "DOWNLOADING",
            Status::Seeding => "SEEDING",
            Status::Stopped => "STOPPED",
            Status::StoppedOnError => "STOPPED_ON_ERROR",
            Status::Metadata => "METADATA",
            Status::Circuits => "CIRCUITS",
        }
    }
}

/// Which optional parts to include.
#[derive(Clone, Copy, Debug, Default)]
pub struct Parts {
    pub peers: bool,
    pub pieces: bool,
    pub files: bool,
}

/// Global figures every download object repeats.
#[derive(Clone, Copy, Debug, Default)]
pub struct Globals {
    pub max_upload_rate: u64,
    pub max_download_rate: u64,
}

/// The status, progress (of the current state) and error text of a download.
pub fn status(d: &Download, stats: Option<&TorrentStats>) -> (Status, f64, String) {
    match (&d.phase, stats) {
        (Phase::Allocating | Phase::Moving, _) => (Status::AllocatingDiskspace, 0.0, String::new()),
        (Phase::Circuits, _) => (Status::Circuits, 0.0, NO_ANONYMITY.to_string()),
        (Phase::Failed(e), _) => (Status::StoppedOnError, 0.0, e.clone()),
        (Phase::Engine(_), None) => (Status::Stopped, 0.0, String::new()),
        (Phase::Engine(_), Some(s)) => {
            let done = progress(s);
            match &s.state {
                TorrentState::CheckQueued => (Status::WaitingForHashcheck, 0.0, String::new()),
                TorrentState::Metadata => (Status::Metadata, 0.0, String::new()),
                TorrentState::Checking { progress } => (Status::Hashchecking, *progress as f64, String::new()),
                TorrentState::Downloading => (Status::Downloading, done, String::new()),
                TorrentState::Seeding => (Status::Seeding, done, String::new()),
                TorrentState::Paused => (Status::Stopped, done, String::new()),
                TorrentState::Error(e) => (Status::StoppedOnError, done, e.clone()),
            }
        }
    }
}

/// Fraction of the wanted bytes verified.
pub fn progress(s: &TorrentStats) -> f64 {
    if s.wanted_bytes == 0 {
        return if s.pieces_total == 0 { 0.0 } else { 1.0 };
    }
    s.have_bytes as f64 / s.wanted_bytes as f64
}

/// Bytes of real files (pad files left out).
pub fn content_size(meta: &Metainfo) -> u64 {
    meta.info.files.iter().filter(|f| !f.is_pad()).map(|f| f.length).sum()
}

/// A finite float for JSON (serde_json would write `null` for NaN or infinity).
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// The download object.
pub fn download(snap: &Snapshot, parts: Parts, globals: Globals) -> Value {
    let d = &snap.download;
    let stats = snap.stats.as_ref();
    let meta = d.meta.as_deref();
    let (status, progress, error) = status(d, stats);
    let active = matches!(status, Status::Downloading | Status::Seeding);
    let size = meta.map_or(0, content_size);
    let (mut down_rate, up_rate) = stats.filter(|_| active).map_or((0, 0), |s| (s.download_rate, s.upload_rate));
    if status == Status::Seeding {
        // A seed has nothing left to download: the engine's average still holds the last
        // seconds' bytes as it decays, which is no download speed.
        down_rate = 0;
    }
    let (session_up, session_down) = stats.map_or((0, 0), |s| (s.uploaded, s.downloaded));
    let all_up = d.resume.all_time_upload + session_up;
    let all_down = d.resume.all_time_download + session_down;
    let have_bytes = stats.map_or(0, |s| s.have_bytes);
    let eta = match (status, stats) {
        (Status::Downloading, Some(s)) => {
            let left = s.wanted_bytes.saturating_sub(s.have_bytes) as f64;
            left / (s.download_rate as f64).max(1e-6)
        }
        _ => 0.0,
    };
    let connected = stats.map_or(0, |s| s.peers);
    let connected_seeds = stats.map_or(0, |s| s.seeds);
    let (swarm_seeds, swarm_leechers) = stats.map_or((0, 0), |s| {
        s.trackers
            .iter()
            .fold((0u32, 0u32), |(a, b), t| (a.max(t.seeders.unwrap_or(0)), b.max(t.leechers.unwrap_or(0))))
    });
    // P's all_time_ratio is upload/download; with nothing downloaded (our own data) it is
    // taken against the verified bytes, so it stays finite.
    let all_time_ratio = if all_down > 0 {
        all_up as f64 / all_down as f64
    } else if have_bytes > 0 {
        all_up as f64 / have_bytes as f64
    } else {
        0.0
    };
    let ratio = if have_bytes > 0 { all_up as f64 / have_bytes as f64 } else { 0.0 };

    let mut o = Map::new();
    o.insert("name".into(), json!(d.name()));
    o.insert("progress".into(), json!(finite(progress)));
    o.insert("infohash".into(), json!(d.info_hash.to_string()));
    o.insert("speed_down".into(), json!(down_rate));
    o.insert("speed_up".into(), json!(up_rate));
    o.insert("status".into(), json!(status.name()));
    o.insert("status_code".into(), json!(status as u8));
    o.insert("size".into(), json!(size));
    o.insert("eta".into(), json!(finite(eta)));
    o.insert("num_peers".into(), json!((connected - connected_seeds).max(swarm_leechers as usize)));
    o.insert("num_seeds".into(), json!(connected_seeds.max(swarm_seeds as usize)));
    o.insert("num_connected_peers".into(), json!(connected - connected_seeds));
    o.insert("num_connected_seeds".into(), json!(connected_seeds));
    o.insert("all_time_upload".into(), json!(all_up));
    o.insert("all_time_download".into(), json!(all_down));
    o.insert("all_time_ratio".into(), json!(finite(all_time_ratio)));
    o.insert("total_up".into(), json!(session_up));
    o.insert("total_down".into(), json!(session_down));
    o.insert("ratio".into(), json!(finite(ratio)));
    o.insert("trackers".into(), trackers(meta, stats));
    o.insert("hops".into(), json!(d.resume.hops));
    o.insert("anon_download".into(), json!(d.resume.hops > 0));
    o.insert("safe_seeding".into(), json!(d.resume.safe_seeding));
    o.insert("max_upload_speed".into(), json!(globals.max_upload_rate));
    o.insert("max_download_speed".into(), json!(globals.max_download_rate));
    o.insert("destination".into(), json!(d.resume.destination.display().to_string()));
    o.insert("availability".into(), json!(finite(stats.map_or(0.0, availability))));
    o.insert("total_pieces".into(), json!(d.piece_count()));
    o.insert("vod_mode".into(), json!(d.resume.vod_mode));
    o.insert("error".into(), json!(error));
    o.insert("time_added".into(), json!(d.resume.time_added));
    o.insert("channel_download".into(), json!(false));
    if parts.peers {
        let peers = snap.peers.as_deref().unwrap_or(&[]);
        o.insert("peers".into(), Value::Array(peers.iter().map(peer).collect()));
    }
    if parts.pieces {
        let pieces = match (stats, &d.meta) {
            (Some(s), Some(_)) => BASE64.encode(s.have.as_bytes()),
            _ => String::new(),
        };
        o.insert("pieces".into(), json!(pieces));
    }
    if parts.files {
        o.insert("files".into(), Value::Array(files(d, stats.map(|s| &s.have))));
    }
    Value::Object(o)
}

/// Copies of the data among connected peers (libtorrent's `distributed_copies`).
fn availability(s: &TorrentStats) -> f64 {
    s.availability as f64
}

/// The tracker list, ending with the `[DHT]` and `[PeX]` pseudo-trackers.
fn trackers(meta: Option<&Metainfo>, stats: Option<&TorrentStats>) -> Value {
    let mut out = Vec::new();
    match stats {
        Some(s) => {
            for t in &s.trackers {
                let status = match &t.state {
                    TrackerState::NotContacted => "Not contacted yet".to_string(),
                    // Tribler shows the last result while an announce is in flight.
                    TrackerState::Updating if t.seeders.is_some() || t.peers > 0 => "Working".to_string(),
                    TrackerState::Updating => "Not contacted yet".to_string(),
                    TrackerState::Working => match &t.message {
                        Some(w) => format!("Warning: {w}"),
                        None => "Working".to_string(),
                    },
                    TrackerState::Error(e) => tracker_error(&e.to_string()),
                    TrackerState::Disabled => "Disabled".to_string(),
                };
                out.push(json!({"url": t.url, "peers": t.peers, "status": status}));
            }
        }
        None => {
            for url in meta.iter().flat_map(|m| m.trackers.iter().flatten()) {
                out.push(json!({"url": url, "peers": 0, "status": "Not contacted yet"}));
            }
        }
    }
    let dht = stats.and_then(|s| s.dht);
    let dht_status = match dht {
        None => "Disabled",
        Some(d) if d.working => "Working",
        Some(_) => "Not working",
    };
    out.push(json!({"url": "[DHT]", "peers": dht.map_or(0, |d| d.peers), "status": dht_status}));
    // PEX is off for private torrents (BEP 27); `peers` counts the addresses it gave us.
    let pex = stats.and_then(|s| s.pex);
    let pex_status = if pex.is_some() { "Working" } else { "Disabled" };
    out.push(json!({"url": "[PeX]", "peers": pex.unwrap_or(0), "status": pex_status}));
    Value::Array(out)
}

/// Tribler's wording for a failed tracker.
fn tracker_error(e: &str) -> String {
    // A failing proxy is the user's to fix, not the tracker's: said as it is.
    if e.starts_with("proxy: ") {
        return format!("Error: {e}");
    }
    let lower = e.to_ascii_lowercase();
    if lower.contains("timed out") || lower.contains("timeout") {
        return "Timeout".into();
    }
    if ["refused", "unreachable", "reset", "failed to lookup", "dns", "no route"].iter().any(|w| lower.contains(w)) {
        return "Not working".into();
    }
    if let Some(code) = lower.split("http status ").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()) {
        if !code.is_empty() {
            return format!("HTTP status code {code}");
        }
    }
    format!("Error: {e}")
}

/// A peer object (§4.3).
fn peer(p: &PeerStats) -> Value {
    json!({
        "id": p.peer_id.0.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "extended_version": p.client.clone().unwrap_or_default(),
        "ip": p.addr.ip().to_string(),
        "port": p.addr.port(),
        "optimistic": p.optimistic,
        "direction": if p.outgoing { "L" } else { "R" },
        "uprate": p.upload_rate,
        "uinterested": p.peer_interested,
        "uchoked": p.am_choking,
        "uhasqueries": p.queued_requests > 0,
        "uflushed": p.queued_requests == 0,
        "downrate": p.download_rate,
        "dinterested": p.am_interested,
        "dchoked": p.peer_choking,
        "snubbed": p.snubbed,
        "utotal": p.uploaded,
        "dtotal": p.downloaded,
        "completed": finite(p.progress as f64),
        "speed": p.peer_download_rate,
        "connection_type": 0,
        "seed": p.seed,
        "upload_only": p.upload_only,
    })
}

/// The file name Tribler shows: the path inside the torrent, without the torrent's folder.
pub fn file_name(meta: &Metainfo, i: usize) -> String {
    let f = &meta.info.files[i];
    let parts = if meta.info.multi_file && f.path.len() > 1 { &f.path[1..] } else { &f.path[..] };
    parts.join("/")
}

/// Verified bytes of each file.
pub fn file_done(meta: &Metainfo, have: Option<&Bitfield>) -> Vec<u64> {
    let mut done = vec![0u64; meta.info.files.len()];
    let Some(have) = have else { return done };
    let layout = FileLayout::new(&meta.info);
    for p in have.iter_ones() {
        for span in layout.piece_spans(p, meta.info.piece_size(p)) {
            if let Some(d) = done.get_mut(span.file as usize) {
                *d += span.len as u64;
            }
        }
    }
    done
}

/// The file objects (§4.8): pad files are left out; indexes are those of the torrent.
pub fn files(d: &Download, have: Option<&Bitfield>) -> Vec<Value> {
    let Some(meta) = d.meta.as_deref() else { return Vec::new() };
    let done = file_done(meta, have);
    meta.info
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_pad())
        .map(|(i, f)| {
            let progress = if f.length == 0 {
                if have.is_some() {
                    1.0
                } else {
                    0.0
                }
            } else {
                done[i] as f64 / f.length as f64
            };
            json!({
                "index": i,
                "name": file_name(meta, i),
                "size": f.length,
                "included": d.included(i),
                "progress": finite(progress),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_errors_in_tribler_words() {
        assert_eq!(tracker_error("connection timed out"), "Timeout");
        assert_eq!(tracker_error("tracker answered HTTP status 404"), "HTTP status code 404");
        assert_eq!(tracker_error("io: Connection refused (os error 111)"), "Not working");
        assert_eq!(tracker_error("bencode: bad reply"), "Error: bencode: bad reply");
        let proxy = "proxy: cannot reach the proxy: connection refused";
        assert_eq!(tracker_error(proxy), format!("Error: {proxy}"));
    }

    #[test]
    fn floats_stay_finite() {
        assert_eq!(finite(f64::INFINITY), 0.0);
        assert_eq!(finite(f64::NAN), 0.0);
        assert_eq!(finite(0.5), 0.5);
    }
}
