//! The route table and the HTTP edge: with `conn` (the sockets), the only file that knows
//! tide and async-h1.
//!
//! Each route declares its method, path, summary, parameters and response schema next to its
//! handler; the same table is registered with tide and turned into `/docs/swagger.json`.
//! Literal paths come before patterns. Every request, whatever its path, goes through
//! [`serve`]: the browser checks first (`Host` against DNS rebinding, `Origin` against CSRF:
//! 403), then auth (so an unknown path without key is a 401), then Tribler's 404 for unknown
//! paths, the 16 MiB body limit, and the handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_lite::AsyncReadExt;
use tide::http::Method as HttpMethod;

use super::access;
use super::api::{self, ApiRequest, ApiResponse, Body, Handler, In, Method, Param, Route, MAX_BODY};
use super::conn::{self, Slots};
use super::debug;
use super::downloads::handlers as dl;
use super::handlers::{self, schema};
use super::health;
use super::knowledge;
use super::metadata;
use super::state::Daemon;
use super::{docs, tools, ui};
use crate::rt::Rt;

const NO_PARAMS: &[Param] = &[];

/// A request body must arrive within this.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

const IH: Param =
    Param { name: "infohash", location: In::Path, required: true, ty: "string", description: "40 hex digits" };

const TREE_PATH: Param =
    Param { name: "path", location: In::Query, required: true, ty: "string", description: "a path in the file tree" };

/// An optional query parameter (a macro, so that the slices holding it stay constants).
macro_rules! q {
    ($name:expr, $ty:expr, $description:expr) => {
        Param { name: $name, location: In::Query, required: false, ty: $ty, description: $description }
    };
}

/// The parameters of a listing of metadata entries.
const LISTING_PARAMS: &[Param] = &[
    q!("first", "integer", "1-based index of the first result (default 1)"),
    q!("last", "integer", "1-based index of the last result (default 50)"),
    q!(
        "sort_by",
        "string",
        "name, size, infohash, date/created, status, category, health (votes, subscribed, torrents: row order)"
    ),
    q!("sort_desc", "boolean", "1/true for descending (default), 0/false for ascending"),
    q!("txt_filter", "string", "words and \"quoted phrases\", a trailing * for a prefix; all must match"),
    q!("hide_xxx", "boolean", "1 to leave out adult content"),
    q!(
        "category",
        "string",
        "only this category (Video, VideoClips, Audio, Document, Compressed, Picture, xxx, Other)"
    ),
    q!("exclude_deleted", "boolean", "1 to leave out entries marked for deletion"),
    q!("max_rowid", "integer", "only entries up to this row (stable paging)"),
    q!("metadata_type", "string", "repeatable: torrent, 300, channel, 400, 220 (only torrents exist)"),
    q!("include_total", "string", "non-empty to add total and max_rowid"),
];

/// The parameters of a local search: a listing's and `tags` (`remote` is refused: there are
/// no peers to ask).
const SEARCH_PARAMS: &[Param] = &[
    q!("first", "integer", "1-based index of the first result (default 1)"),
    q!("last", "integer", "1-based index of the last result (default 50)"),
    q!(
        "sort_by",
        "string",
        "name, size, infohash, date/created, status, category, health (votes, subscribed, torrents: row order)"
    ),
    q!("sort_desc", "boolean", "1/true for descending (default), 0/false for ascending"),
    q!("txt_filter", "string", "words and \"quoted phrases\", a trailing * for a prefix; all must match"),
    q!("hide_xxx", "boolean", "1 to leave out adult content"),
    q!(
        "category",
        "string",
        "only this category (Video, VideoClips, Audio, Document, Compressed, Picture, xxx, Other)"
    ),
    q!("exclude_deleted", "boolean", "1 to leave out entries marked for deletion"),
    q!("max_rowid", "integer", "only entries up to this row (stable paging)"),
    q!("metadata_type", "string", "repeatable: torrent, 300, channel, 400, 220 (only torrents exist)"),
    q!("include_total", "string", "non-empty to add total and max_rowid"),
    q!("tags", "string", "repeatable: only torrents with every one of these tags (without case)"),
];

const COMPLETION_PARAMS: &[Param] =
    &[Param { name: "q", location: In::Query, required: true, ty: "string", description: "the text typed so far" }];

/// Every route the daemon serves.
pub fn table() -> Vec<Route> {
    use Method::*;
    vec![
        Route {
            method: Get,
            path: "/events",
            tag: "General",
            summary: "Server-sent events: events_start first, then engine and daemon events",
            params: NO_PARAMS,
            produces: "text/event-stream",
            response: schema::events,
            handler: handlers::events,
        },
        Route {
            method: Get,
            path: "/settings",
            tag: "General",
            summary: "All settings (triblerd.conf over the defaults) and the ports in use",
            params: NO_PARAMS,
            produces: "application/json",
            response: schema::settings,
            handler: handlers::get_settings,
        },
        Route {
            method: Post,
            path: "/settings",
            tag: "General",
            summary: "Update settings with a partial tree; invalid values, api.* changes and changes of settings without effect are refused with 400",
            params: &[Param {
                name: "body",
                location: In::Body(docs::body::settings),
                required: true,
                ty: "object",
                description: "{\"section\": {\"key\": value}}; empty objects are ignored",
            }],
            produces: "application/json",
            response: schema::modified,
            handler: handlers::post_settings,
        },
        Route {
            method: Put,
            path: "/shutdown",
            tag: "General",
            summary: "Stop the daemon cleanly",
            params: NO_PARAMS,
            produces: "application/json",
            response: schema::shutdown,
            handler: handlers::shutdown,
        },
        Route {
            method: Get,
            path: "/downloads",
            tag: "Libtorrent",
            summary: "All downloads with their figures (insertion order) and the checkpoint load progress",
            params: &[
                q!("get_peers", "boolean", "1 to include each download's peers"),
                q!("get_pieces", "boolean", "1 to include the base64 bitfield of verified pieces"),
                q!("get_files", "boolean", "1 to include the file list"),
                q!("get_availability", "boolean", "accepted for the PyPI GUI; availability is always included"),
                q!("infohash", "string", "only this download"),
                q!("excluded", "string", "every download but this one"),
            ],
            produces: "application/json",
            response: schema::downloads,
            handler: dl::list,
        },
        Route {
            method: Put,
            path: "/downloads",
            tag: "Libtorrent",
            summary: "Add a download from a file:/http(s): URI (JSON body) or a raw .torrent body (options in the query)",
            params: &[Param {
                name: "body",
                location: In::Body(docs::body::add_download),
                required: true,
                ty: "object",
                description: "the torrent to add and where; or the raw .torrent, with these options in the query",
            }],
            produces: "application/json",
            response: schema::started,
            handler: dl::add,
        },
        Route {
            method: Get,
            path: "/torrentinfo",
            tag: "Libtorrent",
            summary: "The contents of a torrent named by a URI, as hex of its JSON form",
            params: &[Param { required: true, ..q!("uri", "string", "file:, http: or https: URI of a .torrent") }, q!("hops", "integer", "ignored (0)")],
            produces: "application/json",
            response: schema::torrentinfo,
            handler: tools::torrentinfo,
        },
        Route {
            method: Post,
            path: "/createtorrent",
            tag: "Libtorrent",
            summary: "Make a torrent of local files; with download=1 also seed it",
            params: &[
                q!("download", "integer", "1 to start seeding the new torrent"),
                Param {
                    name: "body",
                    location: In::Body(docs::body::create_torrent),
                    required: true,
                    ty: "object",
                    description: "the files and how to describe them",
                },
            ],
            produces: "text/plain",
            response: schema::createtorrent,
            handler: tools::createtorrent,
        },
        Route {
            method: Get,
            path: "/libtorrent/settings",
            tag: "Libtorrent",
            summary: "The engine's settings under libtorrent's names",
            params: &[q!("hop", "integer", "0 (other hops have no session)")],
            produces: "application/json",
            response: schema::lt_settings,
            handler: tools::lt_settings,
        },
        Route {
            method: Get,
            path: "/libtorrent/session",
            tag: "Libtorrent",
            summary: "The engine's counters under libtorrent's names",
            params: &[q!("hop", "integer", "0 (other hops have no session)")],
            produces: "application/json",
            response: schema::lt_session,
            handler: tools::lt_session,
        },
        Route {
            method: Get,
            path: "/statistics/tribler",
            tag: "General",
            summary: "Number of downloads and size of the resume data",
            params: NO_PARAMS,
            produces: "application/json",
            response: schema::stats_tribler,
            handler: tools::stats_tribler,
        },
        Route {
            method: Get,
            path: "/statistics/ipv8",
            tag: "General",
            summary: "Payload totals of this session (Shoal has no IPv8)",
            params: NO_PARAMS,
            produces: "application/json",
            response: schema::stats_ipv8,
            handler: tools::stats_ipv8,
        },
        Route {
            method: Get,
            path: "/debug/open_files",
            tag: "Debug",
            summary: "The regular files the daemon holds open (from /proc)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::open_files,
            handler: debug::open_files,
        },
        Route {
            method: Get,
            path: "/debug/open_sockets",
            tag: "Debug",
            summary: "The daemon's TCP and UDP sockets (from /proc)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::open_sockets,
            handler: debug::open_sockets,
        },
        Route {
            method: Get,
            path: "/debug/threads",
            tag: "Debug",
            summary: "The daemon's threads: kernel id, name, state and CPU time",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::threads,
            handler: debug::threads,
        },
        Route {
            method: Get,
            path: "/debug/cpu/history",
            tag: "Debug",
            summary: "The daemon's CPU use, sampled every 5 s (the last hour)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::cpu_history,
            handler: debug::cpu_history,
        },
        Route {
            method: Get,
            path: "/debug/memory/history",
            tag: "Debug",
            summary: "The daemon's resident memory, sampled every 5 s (the last hour)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::memory_history,
            handler: debug::memory_history,
        },
        Route {
            method: Get,
            path: "/debug/log",
            tag: "Debug",
            summary: "The last lines of the daemon's log",
            params: &[
                q!("process", "string", "core (the daemon's log, default) or gui (no GUI log here: empty)"),
                q!("max_lines", "integer", "how many of the last lines (default 100, at least 1)"),
            ],
            produces: "application/json",
            response: debug::schema::log,
            handler: debug::log,
        },
        Route {
            method: Get,
            path: "/debug/profiler",
            tag: "Debug",
            summary: "The profiler's state (always STOPPED: Shoal has no built-in profiler)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::profiler_state,
            handler: debug::profiler_state,
        },
        Route {
            method: Put,
            path: "/debug/profiler",
            tag: "Debug",
            summary: "Start the profiler: refused with 400, Shoal has no built-in profiler",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::success,
            handler: debug::profiler_start,
        },
        Route {
            method: Delete,
            path: "/debug/profiler",
            tag: "Debug",
            summary: "Stop the profiler: refused with 400, Shoal has no built-in profiler",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::success,
            handler: debug::profiler_stop,
        },
        Route {
            method: Post,
            path: "/debug/core_test_exception",
            tag: "Debug",
            summary: "Send a test tribler_exception event with should_stop (the daemon goes on)",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::success,
            handler: debug::core_test_exception,
        },
        Route {
            method: Get,
            path: "/debug/circuits/slots",
            tag: "Debug",
            summary: "Tunnel circuit slots (release build): empty, Shoal builds no tunnels",
            params: NO_PARAMS,
            produces: "application/json",
            response: debug::schema::circuit_slots,
            handler: debug::circuit_slots,
        },
        Route {
            method: Get,
            path: "/metadata/search/local",
            tag: "Metadata",
            summary: "Full-text search of the local metadata store (PyPI build's spelling)",
            params: SEARCH_PARAMS,
            produces: "application/json",
            response: metadata::schema::search,
            handler: metadata::search_local,
        },
        Route {
            method: Get,
            path: "/metadata/search/completions",
            tag: "Metadata",
            summary: "Up to five completions of a typed prefix (PyPI build's spelling)",
            params: COMPLETION_PARAMS,
            produces: "application/json",
            response: metadata::schema::completions,
            handler: metadata::completions,
        },
        Route {
            method: Get,
            path: "/metadata/torrents/popular",
            tag: "Metadata",
            summary: "The healthiest torrents checked in the last day (PyPI build's spelling)",
            params: LISTING_PARAMS,
            produces: "application/json",
            response: metadata::schema::popular,
            handler: metadata::popular_pypi,
        },
        Route {
            method: Put,
            path: "/search/remote",
            tag: "Metadata",
            summary: "Sends a search to remote peers: Shoal knows none, so it answers no peers (PyPI build)",
            params: SEARCH_PARAMS,
            produces: "application/json",
            response: metadata::schema::search_remote,
            handler: metadata::search_remote,
        },
        Route {
            method: Get,
            path: "/search",
            tag: "Metadata",
            summary: "Full-text search of the local metadata store (release's spelling)",
            params: SEARCH_PARAMS,
            produces: "application/json",
            response: metadata::schema::search,
            handler: metadata::search_release,
        },
        Route {
            method: Get,
            path: "/search/completions",
            tag: "Metadata",
            summary: "Up to five completions of a typed prefix (release's spelling)",
            params: COMPLETION_PARAMS,
            produces: "application/json",
            response: metadata::schema::completions,
            handler: metadata::completions,
        },
        Route {
            method: Get,
            path: "/channels/popular_torrents",
            tag: "Metadata",
            summary: "The healthiest torrents checked in the last day (release's spelling)",
            params: LISTING_PARAMS,
            produces: "application/json",
            response: metadata::schema::popular,
            handler: metadata::popular_release,
        },
        Route {
            method: Get,
            path: "/ui",
            tag: "Web UI",
            summary: "The web UI; /ui?key=… signs in (no key needed to load it)",
            params: &[q!("key", "string", "the API key, kept in the api_key cookie by the page")],
            produces: "text/html",
            response: schema::html,
            handler: ui::page,
        },
        Route {
            method: Get,
            path: "/docs",
            tag: "Documentation",
            summary: "This API's documentation: Swagger UI (no key needed)",
            params: NO_PARAMS,
            produces: "text/html",
            response: schema::html,
            handler: docs::page,
        },
        Route {
            method: Get,
            path: "/docs/swagger.json",
            tag: "Documentation",
            summary: "This API's Swagger 2.0 description (no key needed)",
            params: NO_PARAMS,
            produces: "application/json",
            response: schema::swagger,
            handler: handlers::swagger,
        },
        Route {
            method: Get,
            path: "/metadata/torrents/{infohash}/health",
            tag: "Metadata",
            summary: "Start a health check (trackers and DHT); the result follows as channel_entity_updated on /events",
            params: &[IH, q!("timeout", "integer", "seconds, 1 to 120 (default 20)")],
            produces: "application/json",
            response: health::schema,
            handler: health::torrent_health,
        },
        Route {
            method: Get,
            path: "/docs/{file}",
            tag: "Documentation",
            summary: "A file of the Swagger UI: its scripts, styles and icons (no key needed)",
            params: &[Param {
                name: "file",
                location: In::Path,
                required: true,
                ty: "string",
                description: "swagger-ui-bundle.js, swagger-ui.css, swagger-initializer.js, …",
            }],
            produces: "application/javascript",
            response: schema::binary,
            handler: docs::asset,
        },
        Route {
            method: Get,
            path: "/ui/{file}",
            tag: "Web UI",
            summary: "A file of the web UI: its JavaScript modules and styles (no key needed)",
            params: &[Param { name: "file", location: In::Path, required: true, ty: "string", description: "app.js, style.css, …" }],
            produces: "text/javascript",
            response: schema::binary,
            handler: ui::asset,
        },
        Route {
            method: Patch,
            path: "/downloads/{infohash}",
            tag: "Libtorrent",
            summary: "Change a download: state resume/stop/recheck/move_storage, selected_files, anon_hops, vod_mode",
            params: &[
                IH,
                Param {
                    name: "body",
                    location: In::Body(docs::body::change_download),
                    required: true,
                    ty: "object",
                    description: "what to change; fields left out stay as they are",
                },
            ],
            produces: "application/json",
            response: schema::modified_ih,
            handler: dl::patch,
        },
        Route {
            method: Delete,
            path: "/downloads/{infohash}",
            tag: "Libtorrent",
            summary: "Remove a download, and its files with remove_data",
            params: &[
                IH,
                Param {
                    name: "body",
                    location: In::Body(docs::body::remove_download),
                    required: true,
                    ty: "object",
                    description: "whether the files go too",
                },
            ],
            produces: "application/json",
            response: schema::removed,
            handler: dl::remove,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/torrent",
            tag: "Libtorrent",
            summary: "The download's .torrent file",
            params: &[IH],
            produces: "application/x-bittorrent",
            response: schema::binary,
            handler: dl::torrent,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/files",
            tag: "Libtorrent",
            summary: "The download's files; with view_start_path, a page of the expandable file tree",
            params: &[
                IH,
                q!("view_start_path", "string", "list the visible tree rows after this path (\"\" or \".\" for the top)"),
                q!("view_size", "integer", "rows to list (default 100)"),
            ],
            produces: "application/json",
            response: schema::files,
            handler: dl::files,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/files/expand",
            tag: "Libtorrent",
            summary: "Open a directory of the file tree",
            params: &[IH, TREE_PATH],
            produces: "application/json",
            response: schema::path,
            handler: dl::expand,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/files/collapse",
            tag: "Libtorrent",
            summary: "Close a directory of the file tree",
            params: &[IH, TREE_PATH],
            produces: "application/json",
            response: schema::path,
            handler: dl::collapse,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/files/select",
            tag: "Libtorrent",
            summary: "Download a file, or every file under a directory",
            params: &[IH, TREE_PATH],
            produces: "application/json",
            response: schema::empty,
            handler: dl::select,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/files/deselect",
            tag: "Libtorrent",
            summary: "Skip a file, or every file under a directory",
            params: &[IH, TREE_PATH],
            produces: "application/json",
            response: schema::empty,
            handler: dl::deselect,
        },
        Route {
            method: Get,
            path: "/downloads/{infohash}/stream/{fileindex}",
            tag: "Libtorrent",
            summary: "One file with HTTP byte ranges, readable while it downloads (missing data is fetched first and waited for)",
            params: &[
                IH,
                Param { name: "fileindex", location: In::Path, required: true, ty: "integer", description: "index of the file in the torrent" },
                Param { name: "Range", location: In::Header, required: false, ty: "string", description: "bytes=a-b, bytes=a- or bytes=-n" },
            ],
            produces: "application/octet-stream",
            response: schema::binary,
            handler: dl::stream,
        },
        Route {
            method: Patch,
            path: "/knowledge/{infohash}",
            tag: "General",
            summary: "Replace the user's statements (tags, content items) about a torrent; each change is signed",
            params: &[
                IH,
                Param {
                    name: "body",
                    location: In::Body(knowledge::schema::statements),
                    required: true,
                    ty: "object",
                    description: "{\"statements\": [{\"predicate\": 101, \"object\": \"tag\"}]}, at most 1000",
                },
            ],
            produces: "application/json",
            response: knowledge::schema::success,
            handler: knowledge::patch,
        },
        Route {
            method: Get,
            path: "/knowledge/{infohash}/tag_suggestions",
            tag: "General",
            summary: "Tags others gave the torrent that are neither shown nor hidden, and the user has not decided on",
            params: &[IH],
            produces: "application/json",
            response: knowledge::schema::suggestions,
            handler: knowledge::tag_suggestions,
        },
    ]
}

type State = Arc<Daemon>;

/// What a tide endpoint does once the request is authorised.
#[derive(Clone, Copy)]
enum Target {
    Handler(Handler),
    /// The path exists but not with this method.
    WrongMethod,
    /// No such path.
    NotFound,
}

/// `/downloads/{infohash}` → `/downloads/:infohash`.
fn tide_path(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => format!(":{name}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn param_names(path: &'static str) -> Vec<&'static str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn http_method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Put => HttpMethod::Put,
        Method::Patch => HttpMethod::Patch,
        Method::Delete => HttpMethod::Delete,
    }
}

/// The tide application serving `routes`.
pub fn app(daemon: State, routes: &[Route]) -> tide::Server<State> {
    let mut app = tide::with_state(daemon);
    // Group by path, keeping the table's order (literal paths first).
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_path: BTreeMap<&'static str, Vec<&Route>> = BTreeMap::new();
    for r in routes {
        if !by_path.contains_key(r.path) {
            order.push(r.path);
        }
        by_path.entry(r.path).or_default().push(r);
    }
    for path in order {
        let names = param_names(path);
        let mut at = app.at(&tide_path(path));
        at.all(endpoint(Target::WrongMethod, names.clone()));
        for r in &by_path[path] {
            at.method(http_method(r.method), endpoint(Target::Handler(r.handler), names.clone()));
            if r.method == Method::Get {
                at.method(HttpMethod::Head, endpoint(Target::Handler(r.handler), names.clone()));
            }
        }
    }
    // `/` leads to the web UI: a redirect for browsers, not an API route (so not in the table
    // and its description).
    let mut root = app.at("/");
    root.all(endpoint(Target::NotFound, Vec::new()));
    root.method(HttpMethod::Get, endpoint(Target::Handler(ui::root), Vec::new()));
    root.method(HttpMethod::Head, endpoint(Target::Handler(ui::root), Vec::new()));
    app.at("*").all(endpoint(Target::NotFound, Vec::new()));
    app
}

fn endpoint(target: Target, names: Vec<&'static str>) -> impl tide::Endpoint<State> {
    move |req: tide::Request<State>| {
        let names = names.clone();
        async move { Ok(serve(req, target, &names).await) }
    }
}

async fn serve(mut req: tide::Request<State>, target: Target, names: &[&'static str]) -> tide::Response {
    let daemon = req.state().clone();
    let head = req.method() == HttpMethod::Head;
    let url = req.url();
    let path = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy().into_owned();
    let query = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let headers = req
        .iter()
        .flat_map(|(name, values)| {
            values.iter().map(move |v| (name.as_str().to_ascii_lowercase(), v.as_str().to_string()))
        })
        .collect();
    let params = names.iter().filter_map(|n| Some((n.to_string(), req.param(n).ok()?.to_string()))).collect();
    let mut request = ApiRequest { method: req.method().to_string(), path, query, headers, params, body: Vec::new() };

    if let Some(refusal) = access::browser_refusal(&request, &daemon.allowed_hosts) {
        return to_tide(refusal, head);
    }
    if !access::authorized(&request, &daemon.key) {
        return to_tide(api::unauthorized(), head);
    }
    let handler = match target {
        Target::NotFound => return to_tide(api::not_found(&request.path), head),
        Target::WrongMethod => None,
        Target::Handler(h) => Some(h),
    };
    let declared = req.len().unwrap_or(0) as u64;
    if declared > MAX_BODY as u64 {
        return to_tide(api::too_large(declared), head);
    }
    // The body grows as bytes arrive (never sized from Content-Length, which costs a liar
    // nothing), and must arrive in time: a connection reading a body holds a REST slot.
    let mut body = Vec::new();
    let mut reader = req.take_body().take(MAX_BODY as u64 + 1);
    let read = reader.read_to_end(&mut body);
    let body_time = daemon.rt.sleep(BODY_TIMEOUT);
    let timeout = async {
        body_time.await;
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout"))
    };
    match futures_lite::future::or(read, timeout).await {
        Ok(n) if n > MAX_BODY => return to_tide(api::too_large(n as u64), head),
        Ok(_) => request.body = body,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            let message = format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs());
            return to_tide(ApiResponse::json(408, &serde_json::json!({ "error": message })), head);
        }
        Err(e) => return to_tide(ApiResponse::json(400, &serde_json::json!({"error": e.to_string()})), head),
    }
    let large = request.body.len() >= LARGE_BODY;
    let resp = api::dispatch(daemon, handler, request).await;
    if large {
        release_memory();
    }
    to_tide(resp, head)
}

/// Bodies at least this large are given back to the kernel once handled.
const LARGE_BODY: usize = 1 << 20;

/// mimalloc, the binary's allocator, purges freed memory only when the heap that freed it is
/// used again, so a burst of large bodies on an otherwise idle daemon stayed resident (twenty
/// 16 MiB bodies left 272 MiB). Collecting after a large body returns it.
fn release_memory() {
    // SAFETY: mi_collect only walks mimalloc's own structures; it is safe from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn to_tide(resp: ApiResponse, head: bool) -> tide::Response {
    let mut res = tide::Response::new(resp.status);
    if !head {
        match resp.body {
            Body::Bytes(b) => res.set_body(b),
            Body::Stream(s) => res.set_body(tide::Body::from_reader(futures_lite::io::BufReader::new(s), None)),
            Body::Sized(s, len) => {
                res.set_body(tide::Body::from_reader(futures_lite::io::BufReader::new(s), Some(len as usize)))
            }
        }
    }
    res.insert_header("content-type", resp.content_type);
    // API answers hold the user's data and are fetched with the key: never kept by a browser
    // or proxy. Files that may be cached say so themselves.
    if !resp.headers.iter().any(|(name, _)| *name == "cache-control") {
        res.insert_header("cache-control", "no-store");
    }
    for (name, value) in resp.headers {
        res.insert_header(name, value.as_str());
    }
    res
}

/// Accepts connections (until the task running this is dropped), at most `max_connections`
/// at once (see [`conn`]); each connection is served on its own task.
pub async fn serve_http(rt: Rt, listener: async_net::TcpListener, app: tide::Server<State>, max_connections: usize) {
    let slots = Slots::new(max_connections);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to be freed.
                tracing::warn!("accept failed: {e}");
                rt.sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = slots.admit() else {
            // A fresh socket's send buffer is empty: this write does not wait.
            conn::refuse_busy(rt, stream).await;
            continue;
        };
        let app = app.clone();
        rt.detach(conn::serve(rt, stream, slot, move |req| {
            let app = app.clone();
            async move { app.respond(req).await }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_spec() {
        let routes = table();
        let spec = super::super::docs::swagger(&routes, "test");
        for r in &routes {
            assert!(spec["paths"][r.path][r.method.lower()].is_object(), "{} {} missing", r.method.lower(), r.path);
        }
        let documented: usize =
            spec["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
        assert_eq!(documented, routes.len());
    }

    #[test]
    fn literal_paths_before_patterns() {
        let routes = table();
        let first_pattern = routes.iter().position(|r| r.path.contains('{')).unwrap_or(routes.len());
        assert!(routes[first_pattern..].iter().all(|r| r.path.contains('{')));
    }

    #[test]
    fn tide_paths() {
        assert_eq!(tide_path("/downloads/{infohash}/stream/{fileindex}"), "/downloads/:infohash/stream/:fileindex");
        assert_eq!(param_names("/downloads/{infohash}/files"), vec!["infohash"]);
    }
}
