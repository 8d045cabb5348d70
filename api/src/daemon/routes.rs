//! The route table and the HTTP edge: the only file that knows tide (and async-h1).
//!
//! Each route declares its method, path, summary, parameters and response schema next to its
//! handler; the same table is registered with tide and turned into `/docs/swagger.json`.
//! Literal paths come before patterns. Every request, whatever its path, goes through
//! [`serve`]: auth first (so an unknown path without key is a 401), then Tribler's 404 for
//! unknown paths, the 16 MiB body limit, and the handler.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_lite::AsyncReadExt;
use tide::http::Method as HttpMethod;

use super::api::{self, ApiRequest, ApiResponse, Body, Handler, In, Method, Param, Route, MAX_BODY};
use super::handlers::{self, schema};
use super::Daemon;

const NO_PARAMS: &[Param] = &[];

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
            summary: "Update settings with a partial tree; invalid values are refused with 400",
            params: &[Param {
                name: "body",
                location: In::Body,
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
            path: "/docs",
            tag: "Documentation",
            summary: "This API's documentation page (no key needed)",
            params: NO_PARAMS,
            produces: "text/html",
            response: schema::html,
            handler: handlers::docs_page,
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
    app.at("/").all(endpoint(Target::NotFound, Vec::new()));
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

    if !api::authorized(&request, &daemon.key) {
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
    let mut body = Vec::new();
    match req.take_body().take(MAX_BODY as u64 + 1).read_to_end(&mut body).await {
        Ok(n) if n > MAX_BODY => return to_tide(api::too_large(n as u64), head),
        Ok(_) => request.body = body,
        Err(e) => return to_tide(ApiResponse::json(400, &serde_json::json!({"error": e.to_string()})), head),
    }
    to_tide(api::dispatch(daemon, handler, request).await, head)
}

fn to_tide(resp: ApiResponse, head: bool) -> tide::Response {
    let mut res = tide::Response::new(resp.status);
    if !head {
        match resp.body {
            Body::Bytes(b) => res.set_body(b),
            Body::Stream(s) => res.set_body(tide::Body::from_reader(futures_lite::io::BufReader::new(s), None)),
        }
    }
    res.insert_header("content-type", resp.content_type);
    for (name, value) in resp.headers {
        res.insert_header(name, value.as_str());
    }
    res
}

/// Accepts connections (until the task running this is dropped); each connection is served
/// on its own task.
pub async fn serve_http(listener: async_net::TcpListener, app: tide::Server<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("shoal daemon: accept failed: {e}");
                async_io::Timer::after(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        smol::spawn(async move {
            let _ = async_h1::accept(stream, |req| {
                let app = app.clone();
                async move { app.respond(req).await }
            })
            .await;
        })
        .detach();
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
