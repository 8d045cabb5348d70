//! Torrent tools and figures (§5, §6.1): `/torrentinfo`, `/createtorrent`,
//! `/libtorrent/settings|session` and `/statistics/tribler|ipv8`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bt_bencode::Value as Bencode;
use data_encoding::{BASE64, HEXLOWER};
use serde_json::{json, Map, Value};
use shoal_core::create::TorrentBuilder;
use shoal_core::portmap::{MappingState, Via};
use shoal_core::Metainfo;

use super::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture};
use super::downloads::AddRequest;
use super::state::{Daemon, VERSION};
use super::uri;

/// Deepest nesting accepted when turning a torrent into JSON.
const MAX_DEPTH: usize = 64;

/// A byte string as text: UTF-8 if it is, else one character per byte (as Tribler does).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn to_json(v: &Bencode) -> Value {
    match v {
        Bencode::ByteStr(b) => Value::from(text(b)),
        Bencode::Int(bt_bencode::value::Number::Signed(i)) => Value::from(*i),
        Bencode::Int(bt_bencode::value::Number::Unsigned(u)) => Value::from(*u),
        Bencode::List(l) => Value::Array(l.iter().map(to_json).collect()),
        Bencode::Dict(d) => Value::Object(d.iter().map(|(k, v)| (text(k), to_json(v))).collect::<Map<_, _>>()),
    }
}

/// The whole torrent as JSON, with `info.pieces` as hex (the 7.13.1 release's form).
pub fn torrent_json(bytes: &[u8]) -> Result<Value, String> {
    shoal_core::bencode::check(bytes, MAX_DEPTH).map_err(|e| e.to_string())?;
    let v: Bencode = bt_bencode::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut j = to_json(&v);
    if let Bencode::Dict(top) = &v {
        if let Some(Bencode::Dict(info)) = top.get(&b"info"[..]) {
            if let Some(Bencode::ByteStr(p)) = info.get(&b"pieces"[..]) {
                j["info"]["pieces"] = Value::from(HEXLOWER.encode(p));
            }
        }
    }
    Ok(j)
}

/// `GET /torrentinfo?uri=…[&hops=n]`.
pub fn torrentinfo(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let Some(u) = req.query("uri").filter(|u| !u.is_empty()) else {
            return Err(ApiError::bad_request("uri parameter missing"));
        };
        if let Some(h) = req.query("hops") {
            if h.parse::<u32>().is_err() {
                return Err(ApiError::bad_request(format!("wrong value of 'hops' parameter: {h}")));
            }
        }
        let kind = uri::parse(u)?;
        let is_file = matches!(kind, uri::Uri::File(_));
        let bytes = match kind {
            uri::Uri::Magnet => magnet_torrent(&d, u).await?,
            _ => uri::fetch_torrent(d.rt, d.proxy.clone(), u).await?,
        };
        let meta = Metainfo::from_bytes(&bytes).map_err(|e| {
            let what =
                if is_file { format!("error while decoding torrent file: {u}") } else { "invalid response".into() };
            ApiError::Handled(500, format!("{what} ({e})"))
        })?;
        let j = torrent_json(&bytes).map_err(|e| ApiError::Handled(500, format!("invalid response ({e})")))?;
        d.store.record(super::store::entry::TorrentFacts::of(&meta));
        let text = serde_json::to_vec(&j).map_err(|e| ApiError::unhandled("ValueError", e.to_string()))?;
        let exists = d.library.exists(&meta.info_hash).await;
        Ok(ApiResponse::ok(json!({
            "metainfo": HEXLOWER.encode(&text),
            // Tribler answers `true` or `null`, never `false`.
            "download_exists": if exists { Value::Bool(true) } else { Value::Null },
        })))
    })
}

/// How long `/torrentinfo` waits for a magnet's metadata (Tribler's figure).
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);

/// The torrent file of a magnet link: from the download if it has its metadata, else fetched
/// from the swarm by a short-lived hidden torrent (files under the state directory, removed
/// after). Times out with Tribler's `metainfo error`, on which its GUI retries.
async fn magnet_torrent(d: &Daemon, u: &str) -> Result<Vec<u8>, ApiError> {
    let magnet = shoal_core::magnet::Magnet::parse(u).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ih = magnet.info_hash;
    let trackers = magnet.trackers.clone();
    let session = d.library.session().clone();
    let events = session.subscribe().await;
    let (id, probe_dir) = match (d.library.get(&ih).await, d.library.probe(&ih).await) {
        (Some(dl), _) => match (&dl.torrent, dl.torrent_id()) {
            (Some(t), _) => return Ok(t.to_vec()),
            (None, Some(id)) => (id, None),
            (None, None) => return Err(ApiError::Handled(500, "metainfo error".into())),
        },
        // Another `/torrentinfo` of this magnet is looking already (the engine holds one
        // torrent per info-hash): wait for its metadata; its owner removes it.
        (None, Some(probe)) => (probe, None),
        (None, None) => {
            let dir = d.state_dir.join("metadata-probe").join(ih.to_string());
            let opts = shoal_smol::MagnetOptions { magnet, destination: dir.clone(), paused: false, peers: Vec::new() };
            let id = session.add_magnet(opts).await.map_err(|e| ApiError::Handled(500, e.to_string()))?;
            d.library.probe_started(ih, id);
            (id, Some(dir))
        }
    };
    let wait = async {
        while let Ok(e) = events.recv().await {
            if let shoal_core::Event::MetadataReceived { torrent, info } = e {
                // The probe's metadata, or the download's that took the probe's place.
                if torrent == id || d.library.get(&ih).await.and_then(|dl| dl.torrent_id()) == Some(torrent) {
                    return Some(info);
                }
            }
        }
        None
    };
    let timeout = d.rt.sleep(METADATA_TIMEOUT);
    let info = futures_lite::future::or(wait, async {
        timeout.await;
        None
    })
    .await;
    if let Some(dir) = probe_dir {
        if d.library.probe_ended(&ih, id).await {
            let _ = session.remove(id).await;
        }
        // Our own directory under the state directory: nothing else lives there.
        let _ = d.rt.unblock(move || std::fs::remove_dir_all(dir)).await;
    }
    match info {
        Some(info) => Ok(shoal_core::create::torrent_from_info(&info, &trackers)),
        None => Err(ApiError::Handled(500, "metainfo error".into())),
    }
}

/// Lists the regular files under `root` (sorted), as (path inside the torrent, path on disk, length).
fn walk(root: &Path, rel: Vec<String>, out: &mut Vec<(Vec<String>, PathBuf, u64)>) -> Result<(), String> {
    let entries = std::fs::read_dir(root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::metadata(e.path()).map_err(|err| format!("{}: {err}", e.path().display()))?;
        let mut path = rel.clone();
        path.push(name);
        if meta.is_dir() {
            walk(&e.path(), path, out)?;
        } else if meta.is_file() {
            out.push((path, e.path(), meta.len()));
        }
    }
    Ok(())
}

/// Builds a torrent of `paths` (absolute files or directories): a single file stands alone;
/// several share their common parent folder, whose name becomes the torrent's name.
fn make_torrent(
    paths: &[PathBuf],
    comment: Option<String>,
    trackers: Vec<String>,
) -> Result<(Vec<u8>, PathBuf), String> {
    let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    let Some(first) = existing.first() else {
        return Err(format!(
            "Path does not exist: {}",
            paths.first().map_or(String::new(), |p| p.display().to_string())
        ));
    };
    let mut builder;
    let mut files: Vec<(Vec<String>, PathBuf, u64)> = Vec::new();
    let base: PathBuf;
    if existing.len() == 1 && first.is_file() {
        let name = first.file_name().ok_or("a file has no name")?.to_string_lossy().into_owned();
        let len = std::fs::metadata(first).map_err(|e| e.to_string())?.len();
        builder = TorrentBuilder::new(name.clone());
        builder.set_single_file(true);
        files.push((vec![name], first.to_path_buf(), len));
        base = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    } else if existing.len() == 1 {
        let name = first.file_name().ok_or("a directory has no name")?.to_string_lossy().into_owned();
        walk(first, Vec::new(), &mut files)?;
        builder = TorrentBuilder::new(name);
        base = first.parent().unwrap_or(Path::new("/")).to_path_buf();
    } else {
        // The common folder of all paths.
        let mut common = first.parent().unwrap_or(Path::new("/")).to_path_buf();
        while !existing.iter().all(|p| p.starts_with(&common)) {
            common = common.parent().ok_or("the files have no common folder")?.to_path_buf();
        }
        let name = common.file_name().map_or("unknown".to_string(), |n| n.to_string_lossy().into_owned());
        for p in &existing {
            let rel: Vec<String> = p
                .strip_prefix(&common)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if p.is_dir() {
                walk(p, rel, &mut files)?;
            } else {
                let len = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
                files.push((rel, p.to_path_buf(), len));
            }
        }
        files.sort();
        files.dedup();
        builder = TorrentBuilder::new(name);
        base = common.parent().unwrap_or(Path::new("/")).to_path_buf();
    }
    for (rel, _, len) in &files {
        builder.add_file(rel.clone(), *len);
    }
    if builder.total_length() == 0 {
        return Err("the files hold no data to share".into());
    }
    let tiers: Vec<Vec<String>> = trackers.into_iter().map(|t| vec![t]).collect();
    builder
        .set_trackers(tiers)
        .set_comment(comment)
        .set_created_by(Some(format!("Shoal version: {VERSION}")))
        .set_creation_date(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64),
        );
    let mut hasher = builder.piece_hasher();
    let mut buf = vec![0u8; 1 << 20];
    for (_, path, len) in &files {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut f = f.take(*len);
        let mut read = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hasher.update(&buf[..n]);
        }
        if read != *len {
            return Err(format!("{} changed while it was being hashed", path.display()));
        }
    }
    let bytes = builder.build(hasher.finish()).map_err(|e| e.to_string())?;
    Ok((bytes, base))
}

/// `POST /createtorrent[?download=1]`.
pub fn createtorrent(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let body = req.json()?;
        let files: Vec<PathBuf> = match body.get("files") {
            Some(Value::Array(a)) if !a.is_empty() => a.iter().filter_map(Value::as_str).map(PathBuf::from).collect(),
            _ => return Err(ApiError::bad_request("files parameter missing")),
        };
        if files.iter().any(|p| !p.is_absolute()) {
            return Err(ApiError::bad_request("files must be absolute paths"));
        }
        let name = body.get("name").and_then(Value::as_str).unwrap_or("unknown").to_string();
        let comment = body.get("description").and_then(Value::as_str).map(str::to_string);
        let trackers: Vec<String> = match body.get("trackers") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let export_dir = body.get("export_dir").and_then(Value::as_str).map(PathBuf::from);
        let (bytes, base) =
            d.rt.unblock(move || make_torrent(&files, comment, trackers))
                .await
                .map_err(|e| ApiError::Unhandled { code: "OSError".into(), message: e })
                .map_err(|e| match e {
                    // Tribler reports this one as a handled exception.
                    ApiError::Unhandled { code, message } => ApiError::HandledException { code, message },
                    other => other,
                })?;
        if let Some(dir) = export_dir.filter(|d| d.is_dir()) {
            // The name is only a file name: never let it point elsewhere.
            let safe: String = name.chars().map(|c| if c == '/' || c == '\\' || c == '\0' { '_' } else { c }).collect();
            let safe = if safe.is_empty() || safe == "." || safe == ".." { "unknown".to_string() } else { safe };
            let out = dir.join(format!("{safe}.torrent"));
            let data = bytes.clone();
            d.rt.unblock(move || std::fs::write(out, data)).await.map_err(|e| ApiError::Handled(500, e.to_string()))?;
        }
        if req.query("download") == Some("1") {
            d.library
                .add(AddRequest {
                    torrent: bytes.clone(),
                    destination: base,
                    selected_files: None,
                    hops: 0,
                    safe_seeding: false,
                })
                .await?;
        }
        let text = serde_json::to_vec(&json!({"torrent": BASE64.encode(&bytes)})).unwrap_or_default();
        Ok(ApiResponse {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: Body::Bytes(text),
        })
    })
}

fn hop(req: &ApiRequest) -> Result<u64, ApiError> {
    match req.query("hop") {
        None => Ok(0),
        Some(h) => h.parse().map_err(|_| ApiError::unhandled("ValueError", format!("invalid literal for int(): {h}"))),
    }
}

/// `GET /libtorrent/settings?hop=n`: our engine's settings under libtorrent's names.
pub fn lt_settings(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let hop = hop(&req)?;
        if hop != 0 {
            return Ok(ApiResponse::ok(json!({"hop": hop, "settings": {}})));
        }
        let c = &d.engine_config;
        let (down, up) = {
            let s = d.settings.lock().unwrap_or_else(|e| e.into_inner());
            (
                s.get("libtorrent", "max_download_rate").as_u64().unwrap_or(0),
                s.get("libtorrent", "max_upload_rate").as_u64().unwrap_or(0),
            )
        };
        let listen: Vec<String> = d.peer_addrs.iter().map(|a| a.to_string()).collect();
        // libtorrent's enc_policy (pe_forced 0, pe_enabled 1, pe_disabled 2) and
        // enc_level (pe_plaintext 1, pe_rc4 2, pe_both 3).
        let policy = match c.encryption {
            shoal_core::Encryption::Forced => 0,
            shoal_core::Encryption::Enabled => 1,
            shoal_core::Encryption::Disabled => 2,
        };
        let level = c.encryption_levels.bits();
        Ok(ApiResponse::ok(json!({"hop": 0, "settings": {
            "user_agent": c.client_name,
            "listen_interfaces": listen.join(","),
            "download_rate_limit": down,
            "upload_rate_limit": up,
            "connections_limit": c.max_peers_per_torrent,
            "half_open_limit": c.max_half_open,
            "unchoke_slots_limit": c.upload_slots,
            "max_out_request_queue": c.max_requests_per_peer,
            "max_allowed_in_request_queue": c.max_peer_requests,
            "request_timeout": c.request_timeout.as_secs(),
            "peer_connect_timeout": c.connect_timeout.as_secs(),
            "handshake_timeout": c.handshake_timeout.as_secs(),
            "inactivity_timeout": c.inactivity_timeout.as_secs(),
            "num_want": c.num_want,
            "send_buffer_watermark": c.max_send_buffer,
            "active_checking": c.max_checking_torrents,
            "stop_tracker_timeout": c.shutdown_timeout.as_secs(),
            "enable_dht": false,
            "enable_lsd": false,
            "enable_upnp": d.library.session().port_mapping().is_some_and(|p| p.mappings.iter().any(|m| m.via == Via::Upnp)),
            "enable_natpmp": d.library.session().port_mapping().is_some_and(|p| p.mappings.iter().any(|m| matches!(m.via, Via::NatPmp | Via::Pcp))),
            "out_enc_policy": policy,
            "in_enc_policy": policy,
            "allowed_enc_level": level,
        }})))
    })
}

/// `GET /libtorrent/session?hop=n`: session counters under libtorrent's names.
pub fn lt_session(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let hop = hop(&req)?;
        if hop != 0 {
            return Ok(ApiResponse::ok(json!({"hop": hop, "session": {}})));
        }
        let snaps = d.library.snapshots(|_| true, false).await;
        let (
            mut recv,
            mut sent,
            mut wasted,
            mut peers,
            mut checking,
            mut downloading,
            mut seeding,
            mut stopped,
            mut error,
        ) = (0u64, 0u64, 0u64, 0usize, 0, 0, 0, 0, 0);
        for s in &snaps {
            if let Some(st) = &s.stats {
                recv += st.downloaded;
                sent += st.uploaded;
                wasted += st.wasted;
                peers += st.peers;
                use shoal_core::TorrentState::*;
                match st.state {
                    Checking { .. } | CheckQueued => checking += 1,
                    Downloading | Metadata => downloading += 1,
                    Seeding => seeding += 1,
                    Paused => stopped += 1,
                    Error(_) => error += 1,
                }
            }
        }
        let mut session = json!({
            "net.recv_payload_bytes": recv,
            "net.sent_payload_bytes": sent,
            "net.recv_redundant_bytes": wasted,
            "peer.num_peers_connected": peers,
            "ses.num_checking_torrents": checking,
            "ses.num_downloading_torrents": downloading,
            "ses.num_seeding_torrents": seeding,
            "ses.num_stopped_torrents": stopped,
            "ses.num_error_torrents": error,
            "ses.num_loaded_torrents": snaps.len(),
        });
        if let (Some(pm), Some(obj)) = (d.library.session().port_mapping(), session.as_object_mut()) {
            obj.extend(port_mapping_counters(&pm));
        }
        if let (Some(pu), Some(obj)) = (d.library.session().proxy_udp(), session.as_object_mut()) {
            obj.extend(proxy_udp_counters(&pu));
        }
        Ok(ApiResponse::ok(json!({"hop": 0, "session": session})))
    })
}

/// Port mapping's counters and state, as `portmap.*` entries of `/libtorrent/session`
/// (libtorrent has no counters of its own for these; its alerts carry the same facts).
fn port_mapping_counters(pm: &shoal_smol::PortMapReport) -> Map<String, Value> {
    let mappings: Vec<Value> = pm
        .mappings
        .iter()
        .map(|m| {
            let (external_port, error) = match &m.state {
                MappingState::Mapped { external_port, .. } => (Some(*external_port), None),
                MappingState::Failed { error } => (None, Some(error.clone())),
                _ => (None, None),
            };
            json!({
                "via": m.via.to_string(),
                "protocol": m.protocol.name(),
                "internal_port": m.internal_port,
                "state": m.state.word(),
                "external_port": external_port,
                "error": error,
            })
        })
        .collect();
    let rejected: Vec<String> = pm.rejected_ips.iter().map(|(via, ip)| format!("{ip} ({via})")).collect();
    let mut out = Map::new();
    out.insert("portmap.num_mapped".into(), json!(pm.mapped));
    out.insert("portmap.num_renewed".into(), json!(pm.renewed));
    out.insert("portmap.num_failed".into(), json!(pm.failed));
    out.insert("portmap.num_removed".into(), json!(pm.removed));
    out.insert("portmap.external_ip".into(), json!(pm.external_ip.map(|ip| ip.to_string())));
    out.insert("portmap.rejected_external_ips".into(), json!(rejected));
    out.insert("portmap.mappings".into(), json!(mappings));
    out
}

/// The DHT/uTP association with the SOCKS5 proxy, as `proxy.*` entries of
/// `/libtorrent/session`: its state (`connecting`, `up`, `down`), the relay or the error, and
/// its datagram counters.
fn proxy_udp_counters(pu: &shoal_host::ProxyUdpReport) -> Map<String, Value> {
    let (relay, error) = match &pu.state {
        shoal_host::AssociationState::Up { relay } => (Some(relay.to_string()), None),
        shoal_host::AssociationState::Down { error } => (None, Some(error.clone())),
        shoal_host::AssociationState::Connecting => (None, None),
    };
    let mut out = Map::new();
    out.insert("proxy.udp_state".into(), json!(pu.state.word()));
    out.insert("proxy.udp_relay".into(), json!(relay));
    out.insert("proxy.udp_error".into(), json!(error));
    out.insert("proxy.num_udp_associations".into(), json!(pu.associations));
    out.insert("proxy.num_udp_sent".into(), json!(pu.sent));
    out.insert("proxy.num_udp_received".into(), json!(pu.received));
    out.insert("proxy.num_udp_unsent".into(), json!(pu.unsent));
    out.insert("proxy.num_udp_refused".into(), json!(pu.refused));
    out
}

/// `GET /statistics/tribler`: the metadata store's size and entries (no channels exist).
pub fn stats_tribler(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let (db_size, num_torrents) = d
            .store
            .stats()
            .await
            .map_err(|e| ApiError::HandledException { code: "DatabaseError".into(), message: e.to_string() })?;
        Ok(ApiResponse::ok(json!({"tribler_statistics": {
            "db_size": db_size,
            "num_torrents": num_torrents,
            "num_channels": 0,
        }})))
    })
}

/// `GET /statistics/ipv8`: Shoal has no IPv8; the figures are the engine's payload totals.
pub fn stats_ipv8(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let snaps = d.library.snapshots(|_| true, false).await;
        let (up, down) = snaps
            .iter()
            .filter_map(|s| s.stats.as_ref())
            .fold((0u64, 0u64), |(u, dn), s| (u + s.uploaded, dn + s.downloaded));
        Ok(ApiResponse::ok(json!({"ipv8_statistics": {"total_up": up, "total_down": down}})))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_json_keeps_text_and_hexes_pieces() {
        let mut b = TorrentBuilder::new("n\u{e9}".into());
        b.set_single_file(true);
        b.add_file(vec!["n\u{e9}".into()], 5);
        let bytes = b.build(vec![[0xab; 20]]).unwrap();
        let j = torrent_json(&bytes).unwrap();
        assert_eq!(j["info"]["name"], "n\u{e9}");
        assert_eq!(j["info"]["length"], 5);
        assert_eq!(j["info"]["pieces"], "ab".repeat(20));
        assert!(torrent_json(b"l".repeat(10_000).as_slice()).is_err());
        assert_eq!(text(&[0x66, 0xff]), "f\u{ff}");
    }
}
