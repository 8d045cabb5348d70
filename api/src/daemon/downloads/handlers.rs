//! Handlers of `/downloads` and below (§4 of the reference).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use shoal_core::InfoHash;

use super::json::{self as dj, Globals, Parts};
use super::stream::{self, ChunkReader, RangeReq};
use super::tree::{self, FileFacts, Tree};
use super::{AddRequest, DownloadError};
use crate::daemon::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture};
use crate::daemon::state::Daemon;
use crate::daemon::uri;

/// A query flag: R sends `1`; P treats any non-empty value as true, but its GUI sends `0` to
/// mean no, so `0` and `false` are false here.
fn flag(req: &ApiRequest, name: &str) -> bool {
    req.query(name).is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The `{infohash}` path segment, with Tribler's errors: not hex is an unhandled error
/// (`binascii.Error`), hex of another length is an unknown download.
pub fn infohash_param(req: &ApiRequest) -> Result<InfoHash, ApiError> {
    let raw = req.param("infohash").unwrap_or("");
    if raw.len() % 2 == 1 {
        return Err(ApiError::unhandled("binascii.Error", "Odd-length string"));
    }
    if !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unhandled("binascii.Error", "Non-hexadecimal digit found"));
    }
    InfoHash::from_hex(raw).map_err(|_| unknown())
}

fn unknown() -> ApiError {
    ApiError::Handled(404, "this download does not exist".into())
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> ApiError {
        match e {
            DownloadError::Unknown => unknown(),
            DownloadError::Invalid(m) => ApiError::Handled(400, m),
            DownloadError::Failed(m) => ApiError::Handled(500, m),
        }
    }
}

async fn known(d: &Daemon, ih: &InfoHash) -> Result<(), ApiError> {
    if d.library.exists(ih).await {
        Ok(())
    } else {
        Err(unknown())
    }
}

fn globals(d: &Daemon) -> Globals {
    let s = d.settings.lock().unwrap_or_else(|e| e.into_inner());
    Globals {
        max_upload_rate: s.get("libtorrent", "max_upload_rate").as_u64().unwrap_or(0),
        max_download_rate: s.get("libtorrent", "max_download_rate").as_u64().unwrap_or(0),
    }
}

/// `GET /downloads`.
pub fn list(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let parts =
            Parts { peers: flag(&req, "get_peers"), pieces: flag(&req, "get_pieces"), files: flag(&req, "get_files") };
        let only = req.query("infohash").map(str::to_ascii_lowercase);
        let excluded = req.query("excluded").map(str::to_ascii_lowercase);
        let filter = |ih: &InfoHash| {
            let hex = ih.to_string();
            only.as_ref().is_none_or(|o| *o == hex) && excluded.as_ref().is_none_or(|x| *x != hex)
        };
        // Progress first: a checkpoint counted as loaded is already in the list asked for next.
        let (total, loaded) = d.library.checkpoint_progress().await;
        let snaps = d.library.snapshots(filter, parts.peers).await;
        let g = globals(&d);
        let list: Vec<Value> = snaps.iter().map(|s| dj::download(s, parts, g)).collect();
        Ok(ApiResponse::ok(json!({
            "downloads": list,
            "checkpoints": {"total": total, "loaded": loaded, "all_loaded": loaded >= total},
        })))
    })
}

/// A JSON integer or boolean given as `true`/`1`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn file_list(v: &Value) -> Result<Option<Vec<usize>>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_u64()
                    .map(|i| i as usize)
                    .ok_or_else(|| ApiError::bad_request("selected_files must be a list of file indexes"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(ApiError::bad_request("selected_files must be a list of file indexes")),
    }
}

/// Refuses a body field that nothing reads: accepted, it would have no effect.
fn only_fields(obj: &serde_json::Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!("unknown field: {k}"))),
        None => Ok(()),
    }
}

/// `anon_hops`: absent or null is 0; else an integer from 0 to 3.
fn hops_field(v: Option<&Value>) -> Result<u32, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .filter(|h| *h <= 3)
            .map(|h| h as u32)
            .ok_or_else(|| ApiError::bad_request("anon_hops must be an integer from 0 to 3")),
    }
}

/// `safe_seeding`: a boolean, or 0/1 as Tribler's GUI sends it; absent or null is false.
fn safe_seeding_field(v: Option<&Value>) -> Result<bool, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(_) => Err(ApiError::bad_request("safe_seeding must be a boolean (or 0/1)")),
    }
}

/// `destination`: a path; absent, null or empty means the default folder.
fn destination_field(v: Option<&Value>) -> Result<Option<PathBuf>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(_) => Err(ApiError::bad_request("destination must be a string (a directory path)")),
    }
}

/// A query-string value as the JSON value the body would carry: numbers and booleans for
/// the fields that take them, the text itself otherwise (then refused by the field's check).
fn query_value(key: &str, v: &str) -> Value {
    match key {
        "selected_files" => Value::Array(
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(s)))
                .collect(),
        ),
        "anon_hops" => v.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(v)),
        "safe_seeding" => match v {
            "1" => Value::from(1),
            "0" => Value::from(0),
            _ if v.eq_ignore_ascii_case("true") => Value::Bool(true),
            _ if v.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => Value::from(v),
        },
        _ => Value::from(v),
    }
}

/// `PUT /downloads`: from a JSON body with `uri`, or a raw .torrent body (options then come
/// from the query string).
pub fn add(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let raw_torrent = req.body.first() == Some(&b'd')
            || req.header("content-type").is_some_and(|c| c.starts_with("application/x-bittorrent"));
        let mut magnet: Option<String> = None;
        let (torrent, opts) = if raw_torrent {
            let mut opts = serde_json::Map::new();
            for (k, v) in &req.query {
                // The key may come in the query; it is no option of the download.
                if k != "apikey" {
                    opts.insert(k.clone(), query_value(k, v));
                }
            }
            only_fields(&opts, &["anon_hops", "safe_seeding", "destination", "selected_files"])?;
            (req.body.clone(), opts)
        } else {
            let body = req.json()?;
            let Some(opts) = body.as_object().cloned() else {
                return Err(ApiError::bad_request("the body must be a JSON object"));
            };
            only_fields(&opts, &["uri", "anon_hops", "safe_seeding", "destination", "selected_files"])?;
            let u = match opts.get("uri") {
                None | Some(Value::Null) => "",
                Some(Value::String(u)) => u.as_str(),
                Some(_) => return Err(ApiError::bad_request("uri must be a string")),
            };
            if u.is_empty() {
                return Err(ApiError::bad_request("uri parameter missing"));
            }
            // Every field is checked before anything is fetched.
            hops_field(opts.get("anon_hops"))?;
            safe_seeding_field(opts.get("safe_seeding"))?;
            destination_field(opts.get("destination"))?;
            file_list(opts.get("selected_files").unwrap_or(&Value::Null))?;
            let torrent = match uri::parse(u)? {
                uri::Uri::Magnet => {
                    magnet = Some(u.to_string());
                    Vec::new()
                }
                _ => uri::fetch_torrent(d.rt, d.proxy.clone(), u).await?,
            };
            (torrent, opts)
        };
        let hops = hops_field(opts.get("anon_hops"))?;
        let safe_seeding = safe_seeding_field(opts.get("safe_seeding"))?;
        if hops > 0 && !safe_seeding {
            return Err(ApiError::bad_request("Cannot set anonymous download without safe seeding enabled"));
        }
        let destination = destination_field(opts.get("destination"))?.unwrap_or_else(|| d.default_destination());
        let selected_files = file_list(opts.get("selected_files").unwrap_or(&Value::Null))?;
        let req = AddRequest { torrent, destination, selected_files, hops, safe_seeding };
        let ih = match magnet {
            Some(m) => d.library.add_magnet(&m, req).await?,
            None => d.library.add(req).await?,
        };
        Ok(ApiResponse::ok(json!({"started": true, "infohash": ih.to_string()})))
    })
}

/// What a `PATCH /downloads/{infohash}` body asks for, every field checked before any is
/// applied (a bad field must not leave the others half done).
struct Patch {
    selected_files: Option<Vec<usize>>,
    state: Option<StateChange>,
    /// `vod_mode`, with `fileindex`.
    vod: Option<(bool, Option<usize>)>,
}

/// The `state` field.
enum StateChange {
    Resume,
    Stop,
    Recheck,
    Move(PathBuf),
}

impl Patch {
    fn parse(obj: &serde_json::Map<String, Value>) -> Result<Patch, ApiError> {
        only_fields(obj, &["selected_files", "state", "dest_dir", "vod_mode", "fileindex"])?;
        let selected_files = match obj.get("selected_files") {
            Some(files) => Some(file_list(files)?.unwrap_or_default()),
            None => None,
        };
        let state = match obj.get("state") {
            None => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "resume" => StateChange::Resume,
                "stop" => StateChange::Stop,
                "recheck" => StateChange::Recheck,
                "move_storage" => match obj.get("dest_dir") {
                    None | Some(Value::Null) => StateChange::Move(PathBuf::new()),
                    Some(Value::String(d)) => StateChange::Move(PathBuf::from(d)),
                    Some(_) => return Err(ApiError::bad_request("dest_dir must be a string (a directory path)")),
                },
                _ => return Err(ApiError::bad_request("unknown state parameter")),
            }),
            Some(_) => return Err(ApiError::bad_request("unknown state parameter")),
        };
        if obj.contains_key("dest_dir") && !matches!(state, Some(StateChange::Move(_))) {
            return Err(ApiError::bad_request("dest_dir is only used with state move_storage"));
        }
        let vod = match obj.get("vod_mode") {
            None => None,
            Some(vod) => {
                let Some(on) = vod.as_bool() else { return Err(ApiError::bad_request("vod_mode must be bool flag")) };
                let file = match obj.get("fileindex") {
                    Some(f) => {
                        Some(f.as_u64().ok_or_else(|| ApiError::bad_request("fileindex must be an integer"))? as usize)
                    }
                    None if on => return Err(ApiError::bad_request("fileindex is necessary to enable vod_mode")),
                    None => None,
                };
                Some((on, file))
            }
        };
        if obj.contains_key("fileindex") && vod.is_none() {
            return Err(ApiError::bad_request("fileindex is only used with vod_mode"));
        }
        Ok(Patch { selected_files, state, vod })
    }
}

/// `PATCH /downloads/{infohash}`.
pub fn patch(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        known(&d, &ih).await?;
        let body = req.json()?;
        let Some(obj) = body.as_object() else { return Err(ApiError::bad_request("the body must be a JSON object")) };
        let dl = &d.library;
        if let Some(hops) = obj.get("anon_hops") {
            if obj.len() > 1 {
                return Err(ApiError::bad_request("anon_hops must be the only parameter in this request"));
            }
            let hops = match hops {
                Value::Null => Err(ApiError::bad_request("anon_hops must be an integer from 0 to 3")),
                v => hops_field(Some(v)),
            }?;
            dl.set_hops(&ih, hops).await.map_err(|e| match e {
                DownloadError::Unknown => unknown(),
                other => ApiError::Unhandled { code: "RuntimeError".into(), message: other.to_string() },
            })?;
            return Ok(ApiResponse::ok(json!({"modified": true, "infohash": ih.to_string()})));
        }
        let patch = Patch::parse(obj)?;
        if let Some(files) = patch.selected_files {
            dl.set_selected(&ih, files).await?;
        }
        match patch.state {
            None => {}
            Some(StateChange::Resume) => dl.resume(&ih).await?,
            Some(StateChange::Stop) => dl.stop(&ih).await?,
            Some(StateChange::Recheck) => dl.recheck(&ih).await?,
            Some(StateChange::Move(dest)) => {
                if dest.as_os_str().is_empty() || !dest.is_dir() {
                    return Ok(ApiResponse::ok(json!({
                        "error": format!("Target directory ({}) does not exist", dest.display())
                    })));
                }
                if !dest.is_absolute() {
                    return Err(ApiError::bad_request("dest_dir must be an absolute path"));
                }
                match dl.move_storage(&ih, dest).await {
                    Ok(()) => {}
                    // Removed meanwhile (the move waited behind the removal): like any change
                    // of a download that is not there.
                    Err(DownloadError::Unknown) => return Err(unknown()),
                    Err(e) => return Ok(ApiResponse::ok(json!({"error": e.to_string()}))),
                }
            }
        }
        if let Some((on, file)) = patch.vod {
            dl.set_vod(&ih, on, file).await?;
            let vod_progress = vod_progress(&d, &ih).await;
            return Ok(ApiResponse::ok(json!({
                "vod_prebuffering_progress": vod_progress,
                "vod_prebuffering_progress_consec": vod_progress,
                "vod_header_progress": vod_progress,
                "vod_footer_progress": vod_progress,
                "vod_mode": on,
                "infohash": ih.to_string(),
                "modified": true,
            })));
        }
        Ok(ApiResponse::ok(json!({"modified": true, "infohash": ih.to_string()})))
    })
}

/// Fraction of the streamed file verified (all four VOD progress figures use it).
async fn vod_progress(d: &Daemon, ih: &InfoHash) -> f64 {
    let Some(dl) = d.library.get(ih).await else { return 0.0 };
    let Some(file) = dl.resume.vod_file else { return 0.0 };
    let Some(meta) = dl.meta.clone() else { return 0.0 };
    let have = match dl.torrent_id() {
        Some(id) => d.library.session().stats(id).await.map(|s| s.have),
        None => None,
    };
    let done = dj::file_done(&meta, have.as_ref());
    let len = meta.info.files.get(file).map_or(0, |f| f.length);
    if len == 0 {
        1.0
    } else {
        done.get(file).copied().unwrap_or(0) as f64 / len as f64
    }
}

/// `DELETE /downloads/{infohash}` with `{"remove_data": bool}`.
pub fn remove(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        known(&d, &ih).await?;
        let body = req.json()?;
        let Some(remove_data) = body.get("remove_data") else {
            return Err(ApiError::bad_request("remove_data parameter missing"));
        };
        let remove_data = truthy(remove_data);
        d.library.remove(&ih, remove_data).await.map_err(|e| match e {
            DownloadError::Unknown => unknown(),
            other => ApiError::Unhandled { code: "RuntimeError".into(), message: other.to_string() },
        })?;
        Ok(ApiResponse::ok(json!({"removed": true, "infohash": ih.to_string()})))
    })
}

/// `GET /downloads/{infohash}/torrent`: the torrent file.
pub fn torrent(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        let dl = d.library.get(&ih).await.ok_or_else(unknown)?;
        Ok(ApiResponse {
            status: 200,
            content_type: "application/x-bittorrent",
            headers: vec![("content-disposition", format!("attachment; filename={ih}.torrent"))],
            body: Body::Bytes(dl.torrent.as_ref().ok_or_else(unknown)?.to_vec()),
        })
    })
}

/// `GET /downloads/{infohash}/files`, plain or (with `view_start_path`) as the P tree view.
pub fn files(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        let dl = d.library.get(&ih).await.ok_or_else(unknown)?;
        let have = match dl.torrent_id() {
            Some(id) => d.library.session().stats(id).await.map(|s| s.have),
            None => None,
        };
        let given = req.param("infohash").unwrap_or("").to_string();
        if let Some(start) = req.query("view_start_path") {
            let size = match req.query("view_size") {
                Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("view_size must be an integer"))?,
                None => 100,
            };
            let Some(meta) = dl.meta.clone() else {
                return Ok(ApiResponse::ok(json!({"infohash": given, "query": start, "files": [tree::loading_row()]})));
            };
            let done = dj::file_done(&meta, have.as_ref());
            let expanded = d.library.expanded(&ih).await;
            let included = |i: usize| dl.included(i);
            let facts = FileFacts { done: &done, included: &included };
            let rows = Tree::new(&meta).view(&expanded, &facts, start, size);
            return Ok(ApiResponse::ok(json!({"infohash": given, "query": start, "files": rows})));
        }
        Ok(ApiResponse::ok(json!({"infohash": given, "files": dj::files(&dl, have.as_ref())})))
    })
}

fn tree_path(req: &ApiRequest) -> Result<String, ApiError> {
    req.query("path").map(str::to_string).ok_or_else(|| ApiError::bad_request("path parameter missing"))
}

/// `GET /downloads/{infohash}/files/expand?path=…`.
pub fn expand(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        known(&d, &ih).await?;
        let path = tree_path(&req)?;
        let expanded = path.clone();
        d.library.update_expanded(&ih, move |set| tree::expand(set, &expanded));
        Ok(ApiResponse::ok(json!({"path": path})))
    })
}

/// `GET /downloads/{infohash}/files/collapse?path=…`.
pub fn collapse(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        known(&d, &ih).await?;
        let path = tree_path(&req)?;
        let collapsed = path.trim_matches('/').to_string();
        d.library.update_expanded(&ih, move |set: &mut BTreeSet<String>| {
            set.remove(&collapsed);
        });
        Ok(ApiResponse::ok(json!({"path": path})))
    })
}

async fn select_path(d: &Daemon, req: &ApiRequest, on: bool) -> Result<ApiResponse, ApiError> {
    let ih = infohash_param(req)?;
    let dl = d.library.get(&ih).await.ok_or_else(unknown)?;
    let path = tree_path(req)?;
    let Some(meta) = dl.meta.clone() else {
        return Err(ApiError::bad_request("the torrent's files are not known yet (fetching metadata)"));
    };
    let touched = Tree::new(&meta).indexes_at(&path);
    if touched.is_empty() {
        return Err(ApiError::bad_request(format!("no such path in the torrent: {path}")));
    }
    let mut selected: Vec<usize> = (0..dl.file_count()).filter(|&i| dl.included(i)).collect();
    if on {
        selected.extend(touched);
        selected.sort_unstable();
        selected.dedup();
    } else {
        selected.retain(|i| !touched.contains(i));
    }
    d.library.set_selected(&ih, selected).await?;
    Ok(ApiResponse::ok(json!({})))
}

/// `GET /downloads/{infohash}/files/select?path=…`.
pub fn select(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { select_path(&d, &req, true).await })
}

/// `GET /downloads/{infohash}/files/deselect?path=…`.
pub fn deselect(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { select_path(&d, &req, false).await })
}

/// `GET /downloads/{infohash}/stream/{fileindex}`.
pub fn stream(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash_param(&req)?;
        let dl = d.library.get(&ih).await.ok_or_else(unknown)?;
        let index = req.param("fileindex").and_then(|i| i.parse::<usize>().ok());
        let file = index.and_then(|i| {
            dl.meta.as_ref().and_then(|m| m.info.files.get(i)).filter(|f| !f.is_pad()).map(|f| (i, f.length))
        });
        let Some((index, size)) = file else {
            return Err(ApiError::unhandled("NoAvailableStreamError", "no such file in the torrent"));
        };
        let (status, start, end) = match stream::parse_range(req.header("range"), size) {
            RangeReq::Full => (200, 0, size),
            RangeReq::Part { start, end } => (206, start, end),
            RangeReq::Unsatisfiable => {
                return Ok(ApiResponse {
                    status: 416,
                    content_type: "text/plain; charset=utf-8",
                    headers: vec![("content-range", format!("bytes */{size}")), ("accept-ranges", "bytes".into())],
                    body: Body::Bytes(b"Requested Range Not Satisfiable".to_vec()),
                })
            }
        };
        let mut headers = vec![("accept-ranges", "bytes".to_string())];
        if status == 206 {
            headers.push(("content-range", format!("bytes {start}-{}/{size}", end - 1)));
        }
        let (reader, tx, gone) = ChunkReader::new();
        if req.method != "HEAD" && end > start {
            let span = stream::Span { ih, file: index, start, end };
            d.rt.detach(stream::produce(d.library.clone(), d.rt, span, tx, gone));
        }
        Ok(ApiResponse {
            status,
            content_type: "application/octet-stream",
            headers,
            body: Body::Sized(Box::new(reader), end - start),
        })
    })
}
