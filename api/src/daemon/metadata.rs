//! Local search, completions and popular torrents over the metadata store (§6.3/§6.4 of the
//! Tribler reference), in both spellings: the PyPI build's `/metadata/...` routes and the
//! release's `/search`, `/search/completions`, `/channels/popular_torrents`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, HandlerFuture};
use super::state::Daemon;
use super::store::flavor::Flavor;
use super::store::query::SearchParams;
use super::store::statement::CONTENT_ITEM;
use super::store::StoreError;

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
    let mut results: Vec<Value> = page.entries.iter().map(|e| e.to_json(flavor)).collect();
    // The release bundles the first page's torrents of one content item into snippets; the
    // PyPI build's local search does not.
    if flavor == Flavor::Release && p.first == 1 {
        results = with_snippets(results);
    }
    let mut out = Map::new();
    out.insert("results".into(), Value::Array(results));
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

/// Tribler's metadata type of a snippet.
const SNIPPET: i64 = 600;
/// How many snippets the release shows, and how many torrents each holds (Tribler's).
const SNIPPETS_TO_SHOW: usize = 3;
const MAX_TORRENTS_IN_SNIPPETS: usize = 4;

/// The release's `build_snippets`: the torrents of each content item (a `predicate` 103
/// statement) bundled in a snippet, most seeded first, the three snippets whose best torrent
/// is most seeded shown first and their torrents taken out of the plain results.
fn with_snippets(results: Vec<Value>) -> Vec<Value> {
    let seeders = |e: &Value| e["num_seeders"].as_i64().unwrap_or(0);
    // Content items in order of first appearance, each with its torrents' indices.
    let mut items: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, e) in results.iter().enumerate() {
        let statements = e["statements"].as_array().map(Vec::as_slice).unwrap_or_default();
        for s in statements.iter().filter(|s| s["predicate"] == CONTENT_ITEM) {
            let Some(item) = s["object"].as_str() else { continue };
            match items.iter_mut().find(|(name, _)| name == item) {
                Some((_, torrents)) => torrents.push(i),
                None => items.push((item.to_string(), vec![i])),
            }
        }
    }
    for (_, torrents) in &mut items {
        torrents.sort_by_key(|&i| std::cmp::Reverse(seeders(&results[i])));
    }
    items.sort_by_key(|(_, torrents)| std::cmp::Reverse(seeders(&results[torrents[0]])));
    items.truncate(SNIPPETS_TO_SHOW);
    let bundled: Vec<usize> = items.iter().flat_map(|(_, t)| t.iter().copied()).collect();
    let snippets = items.iter().map(|(item, torrents)| {
        let shown: Vec<&Value> = torrents.iter().take(MAX_TORRENTS_IN_SNIPPETS).map(|&i| &results[i]).collect();
        json!({"type": SNIPPET, "infohash": item, "category": "", "name": item, "torrents": torrents.len(),
               "torrents_in_snippet": shown})
    });
    let rest = results.iter().enumerate().filter(|(i, _)| !bundled.contains(i)).map(|(_, e)| e.clone());
    snippets.chain(rest).collect()
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
    let snaps = d.library.snapshots(|_| true, false).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn torrent(ih: &str, seeders: i64, items: &[&str]) -> Value {
        let statements: Vec<Value> =
            items.iter().map(|i| json!({"subject_type": 102, "object": i, "predicate": 103, "subject": ih})).collect();
        json!({"type": 300, "infohash": ih, "num_seeders": seeders, "statements": statements})
    }

    #[test]
    fn snippets_bundle_torrents_of_a_content_item() {
        let results = vec![
            torrent("a", 1, &["Ubuntu 22.04"]),
            torrent("b", 0, &[]),
            torrent("c", 9, &["Ubuntu 22.04"]),
            torrent("d", 3, &["Debian 12"]),
        ];
        let out = with_snippets(results.clone());
        let kinds: Vec<(&str, i64)> =
            out.iter().map(|e| (e["infohash"].as_str().unwrap(), e["type"].as_i64().unwrap())).collect();
        // The snippet whose best torrent has most seeders first; bundled torrents leave the list.
        assert_eq!(kinds, [("Ubuntu 22.04", 600), ("Debian 12", 600), ("b", 300)]);
        assert_eq!(
            out[0],
            json!({"type": 600, "infohash": "Ubuntu 22.04", "category": "", "name": "Ubuntu 22.04", "torrents": 2,
                   "torrents_in_snippet": [results[2], results[0]]})
        );
        // Nothing to bundle: the results as they were.
        let plain = vec![torrent("x", 0, &[]), torrent("y", 5, &[])];
        assert_eq!(with_snippets(plain.clone()), plain);
        // At most three snippets of at most four torrents; the rest of a shown item is still taken out.
        let many: Vec<Value> =
            (0..6).map(|i| torrent(&format!("t{i}"), i, &[["A1", "B2", "C3", "D4"][i as usize % 4]])).collect();
        let out = with_snippets(many);
        assert_eq!(out.len(), 3 + 1, "three snippets and the one torrent of the fourth item");
        let five: Vec<Value> = (0..5).map(|i| torrent(&format!("u{i}"), i, &["Same 1"])).collect();
        let out = with_snippets(five);
        assert_eq!(
            (out.len(), out[0]["torrents"].as_i64(), out[0]["torrents_in_snippet"].as_array().unwrap().len()),
            (1, Some(5), 4)
        );
    }
}
