//! Local search, completions and popular torrents over the metadata store (§6.3/§6.4 of the
//! Tribler reference), in both spellings: the PyPI build's `/metadata/...` routes and the
//! release's `/search`, `/search/completions`, `/channels/popular_torrents`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, HandlerFuture};
use super::store::entry::Flavor;
use super::store::query::SearchParams;
use super::store::StoreError;
use super::Daemon;

/// A store failure during a search: Tribler answers 400 with an empty body.
fn store_failed(e: StoreError) -> ApiError {
    eprintln!("shoal daemon: search failed: {e}");
    ApiError::Empty(400)
}

fn params(req: &ApiRequest) -> Result<SearchParams, ApiError> {
    SearchParams::parse(&req.query).map_err(|e| ApiError::bad_request(e.0))
}

async fn search(d: Arc<Daemon>, req: ApiRequest, flavor: Flavor) -> Result<ApiResponse, ApiError> {
    let p = params(&req)?;
    let page = d.store.search(p.clone()).await.map_err(store_failed)?;
    let mut out = Map::new();
    out.insert("results".into(), page.entries.iter().map(|e| e.to_json(flavor)).collect());
    out.insert("first".into(), json!(p.first));
    out.insert("last".into(), json!(p.last));
    out.insert("sort_by".into(), json!(p.sort_by_name));
    out.insert("sort_desc".into(), json!(p.sort_desc));
    if let Some((total, max_rowid)) = page.total {
        out.insert("total".into(), json!(total));
        out.insert("max_rowid".into(), json!(max_rowid));
    }
    Ok(ApiResponse::ok(Value::Object(out)))
}

/// `GET /metadata/search/local` (PyPI build).
pub fn search_local(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(search(d, req, Flavor::PyPi))
}

/// `GET /search` (release).
pub fn search_release(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(search(d, req, Flavor::Release))
}

/// `GET /metadata/search/completions?q=` and `GET /search/completions?q=`.
pub fn completions(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let Some(q) = req.query("q") else { return Err(ApiError::bad_request("query parameter missing")) };
        let text = q.trim().to_lowercase();
        let completions = d.store.completions(text).await.map_err(store_failed)?;
        Ok(ApiResponse::ok(json!({ "completions": completions })))
    })
}

async fn popular(d: Arc<Daemon>, req: ApiRequest, flavor: Flavor) -> Result<ApiResponse, ApiError> {
    let p = params(&req)?;
    let page = d.store.popular(p.clone()).await.map_err(store_failed)?;
    let snaps = d.downloads.snapshots(|_| true, false).await;
    let results: Vec<Value> = page
        .entries
        .iter()
        .map(|e| {
            let mut j = e.to_json(flavor);
            // A torrent that is also a download shows its progress, as in Tribler.
            let progress =
                snaps.iter().find(|s| s.download.info_hash.0[..] == e.infohash[..]).and_then(|s| s.stats.as_ref());
            if let Some(stats) = progress {
                j["progress"] = json!(super::downloads::json::progress(stats));
            }
            j
        })
        .collect();
    Ok(ApiResponse::ok(json!({"results": results, "first": p.first, "last": p.last})))
}

/// `GET /metadata/torrents/popular` (PyPI build).
pub fn popular_pypi(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(popular(d, req, Flavor::PyPi))
}

/// `GET /channels/popular_torrents` (release).
pub fn popular_release(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(popular(d, req, Flavor::Release))
}

/// `PUT /search/remote` (PyPI build): Tribler sends the query to peers of its content-discovery
/// community and their results arrive later as `remote_query_results` events. Shoal has no such
/// community, so the query (validated like a local search: bad values are a 400) goes to no
/// peer: the answer is a fresh request id and `"peers": []`, what Tribler itself answers when it
/// knows no peer, and no result event follows.
pub fn search_remote(_d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        SearchParams::parse(&req.query).map_err(|e| ApiError::bad_request(e.0))?;
        let request_uuid = uuid::Uuid::new_v4().to_string();
        Ok(ApiResponse::ok(json!({ "request_uuid": request_uuid, "peers": [] })))
    })
}

/// Response schemas, for the Swagger description.
pub mod schema {
    use serde_json::{json, Value};

    fn entry() -> Value {
        let int = json!({"type": "integer"});
        let s = json!({"type": "string"});
        json!({"type": "object", "properties": {
            "type": int, "id": int, "origin_id": int, "public_key": s, "status": int, "name": s,
            "category": s, "infohash": s, "size": int, "num_seeders": int, "num_leechers": int,
            "last_tracker_check": int, "created": int, "tag_processor_version": int,
            "progress": {"type": "number"}, "statements": {"type": "array", "items": {"type": "object"}},
        }})
    }

    pub fn search() -> Value {
        json!({"type": "object", "properties": {
            "results": {"type": "array", "items": entry()}, "first": {"type": "integer"}, "last": {"type": "integer"},
            "sort_by": {"type": "string", "x-nullable": true}, "sort_desc": {"type": "boolean"},
            "total": {"type": "integer"}, "max_rowid": {"type": "integer", "x-nullable": true},
        }})
    }

    pub fn completions() -> Value {
        json!({"type": "object", "properties": {"completions": {"type": "array", "items": {"type": "string"}}}})
    }

    pub fn search_remote() -> Value {
        json!({"type": "object", "properties": {
            "request_uuid": {"type": "string"}, "peers": {"type": "array", "items": {"type": "string"}},
        }})
    }

    pub fn popular() -> Value {
        json!({"type": "object", "properties": {
            "results": {"type": "array", "items": entry()}, "first": {"type": "integer"}, "last": {"type": "integer"},
        }})
    }
}
