//! `shoal daemon` over real HTTP on loopback: auth, error shapes, settings, events, shutdown.
//!
//! Each test starts the real binary with a temporary state directory, `--http-port 0` (the
//! daemon reports the port it bound) and `SHOAL_LOCAL_ONLY=1`. Nothing waits on a sleep: the
//! tests wait on the daemon's output, on events and on process exit, each with a timeout.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::{events, get, post_settings, request, start, wait_exit, Daemon, Opts, TempDir, TIMEOUT};
use serde_json::{json, Value};

fn stored_key(state: &Path) -> String {
    let conf = std::fs::read_to_string(state.join("triblerd.conf")).unwrap();
    let mut in_api = false;
    for line in conf.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_api = line == "[api]";
        } else if let (true, Some(v)) = (in_api, line.strip_prefix("key=").or_else(|| line.strip_prefix("key = "))) {
            return v.trim().to_string();
        }
    }
    panic!("no [api] key in {conf}");
}

/// Sends a raw request and returns (status, body).
fn raw(d: &Daemon, head: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[test]
fn auth_and_error_shapes() {
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "testkey123"], ..Opts::default() });
    let key = "testkey123";

    // No key, wrong key: 401 with a string error (also for unknown paths: auth comes first).
    for (path, headers) in [
        ("/settings", vec![]),
        ("/settings", vec![("X-Api-Key", "wrong")]),
        ("/settings?apikey=wrong", vec![]),
        ("/settings", vec![("Cookie", "api_key=wrong")]),
        ("/nonexistent", vec![]),
        // `/` redirects to the web UI without a key; a path merely starting with /ui needs one.
        ("/uix", vec![]),
    ] {
        let r = request(&d, "GET", path, &headers, None);
        assert_eq!(r.status, 401, "{path} {headers:?}");
        assert_eq!(r.content_type, "application/json");
        insta::assert_json_snapshot!("unauthorized", r.json());
    }
    // The key three ways.
    assert_eq!(get(&d, "/settings", key).status, 200);
    assert_eq!(request(&d, "GET", &format!("/settings?apikey={key}"), &[], None).status, 200);
    assert_eq!(request(&d, "GET", "/settings", &[("Cookie", &format!("theme=dark; api_key={key}"))], None).status, 200);

    // Unknown paths: Tribler's 404.
    let r = get(&d, "/nonexistent", key);
    assert_eq!((r.status, r.content_type.as_str()), (404, "application/json"));
    insta::assert_json_snapshot!("not_found", r.json());
    assert_eq!(get(&d, "/state", key).json()["error"]["message"], "Could not find /state");
    assert_eq!(get(&d, "/a/b/c", key).json()["error"]["message"], "Could not find /a/b/c");

    // HEAD on a GET route: headers, no body.
    let r = request(&d, "HEAD", "/settings", &[("X-Api-Key", key)], None);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json"));

    // A method the path does not serve: the unhandled 500 (like aiohttp's 405 in Tribler).
    for method in ["DELETE", "PATCH", "OPTIONS"] {
        let r = request(&d, method, "/settings", &[("X-Api-Key", key)], None);
        assert_eq!(r.status, 500, "{method}");
        insta::assert_json_snapshot!("method_not_allowed", r.json());
    }

    // Bad JSON: the unhandled shape.
    let r = post_settings(&d, key, "{not json");
    assert_eq!(r.status, 500);
    let body = r.json();
    assert_eq!((&body["error"]["handled"], &body["error"]["code"]), (&json!(false), &json!("JSONDecodeError")));
    insta::assert_json_snapshot!("bad_json", body, {".error.message" => "[message]"});
    assert_eq!(post_settings(&d, key, "").json()["error"]["code"], "JSONDecodeError");

    // JSON sent as form-urlencoded (as the GUI does) is read as JSON.
    let r = post_settings(&d, key, r#"{"Tribler": {}, "libtorrent": {"max_download_rate": 500}}"#);
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})));

    // Bodies over 16 MiB: 413, whether declared or streamed.
    let (status, body) = raw(
        &d,
        &format!("POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {key}\r\nContent-Length: 16777217\r\nConnection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(status, 413);
    insta::assert_json_snapshot!("too_large", body);
    let mut chunked = Vec::new();
    for _ in 0..17 {
        chunked.extend_from_slice(b"100000\r\n");
        chunked.extend(std::iter::repeat_n(b' ', 1 << 20));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw(
        &d,
        &format!("POST /settings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
        &chunked,
    );
    assert_eq!((status, &body["error"]["handled"]), (413, &json!(true)));

    // No CORS headers.
    let r = get(&d, "/settings", key);
    assert!(r.headers.iter().all(|(k, _)| !k.to_ascii_lowercase().starts_with("access-control")));

    d.shutdown(key);
}

#[test]
fn docs_describe_every_route() {
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "k"], ..Opts::default() });
    let page = request(&d, "GET", "/docs", &[], None);
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    let r = request(&d, "GET", "/docs/swagger.json", &[], None);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json; charset=utf-8"));
    let spec = r.json();
    assert_eq!(spec["swagger"], "2.0");
    assert_eq!(spec["securityDefinitions"]["apiKey"]["name"], "X-Api-Key");
    let paths = spec["paths"].as_object().unwrap();
    for p in ["/events", "/settings", "/shutdown", "/docs", "/docs/swagger.json"] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    // Every documented path is served: never the unknown-path 404. GET routes answer HEAD;
    // those that need nothing (no path or required query parameter) answer 200.
    for (path, ops) in paths {
        let concrete =
            path.replace("{infohash}", &"0".repeat(40)).replace("{fileindex}", "0").replace("{file}", "swagger-ui.css");
        if path == "/events" {
            assert_eq!(request(&d, "HEAD", path, &[("X-Api-Key", "k")], None).status, 200);
            continue;
        }
        if path == "/shutdown" {
            continue; // tested below
        }
        let (method, op) = ops.as_object().unwrap().iter().next().unwrap();
        let r = request(&d, &method.to_uppercase(), &concrete, &[("X-Api-Key", "k")], None);
        let unknown_route =
            r.status == 404 && r.json()["error"]["message"].as_str().is_some_and(|m| m.starts_with("Could not find"));
        assert!(!unknown_route, "{method} {path} is documented but not served");
        let needs_input =
            path.contains('{') || op["parameters"].as_array().unwrap().iter().any(|p| p["required"] == json!(true));
        if method == "get" && !needs_input {
            assert_eq!(request(&d, "HEAD", path, &[("X-Api-Key", "k")], None).status, 200, "HEAD {path}");
        }
    }
    d.shutdown("k");
}

/// `/docs` is the Swagger UI, its files served by the daemon itself (no CDN), without a key.
#[test]
fn docs_serve_the_swagger_ui() {
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "k"], ..Opts::default() });
    let page = request(&d, "GET", "/docs", &[], None);
    assert_eq!((page.status, page.content_type.as_str()), (200, "text/html; charset=utf-8"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains(r#"<div id="swagger-ui">"#), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page loads something from elsewhere: {html}");
    // Every script and stylesheet the page names is served, with its type.
    let refs: Vec<&str> = html.split(['"', '\'']).filter(|r| r.ends_with(".js") || r.ends_with(".css")).collect();
    assert!(refs.iter().any(|r| r.ends_with("swagger-ui-bundle.js")), "{refs:?}");
    for r in &refs {
        let path = format!("/docs/{}", r.trim_start_matches("./"));
        let resp = request(&d, "GET", &path, &[], None);
        let want = if r.ends_with(".js") { "application/javascript" } else { "text/css" };
        assert_eq!(resp.status, 200, "{path}");
        assert!(resp.content_type.starts_with(want), "{path}: {}", resp.content_type);
        assert!(!resp.body.is_empty(), "{path} is empty");
    }
    // The UI is pointed at our description.
    let init = request(&d, "GET", "/docs/swagger-initializer.js", &[], None);
    assert!(String::from_utf8_lossy(&init.body).contains(r#""url": "/docs/swagger.json""#));
    assert_eq!(request(&d, "GET", "/docs/no-such-file.js", &[], None).status, 404);
    d.shutdown("k");
}

/// The description is Swagger 2.0 in structure: every operation has a 200 response schema,
/// every body parameter a schema with properties and an example, every other parameter a type.
#[test]
fn swagger_spec_is_structurally_valid() {
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "k"], ..Opts::default() });
    let spec = request(&d, "GET", "/docs/swagger.json", &[], None).json();
    d.shutdown("k");
    assert_eq!(spec["swagger"], "2.0");
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    let methods = ["get", "put", "post", "delete", "options", "head", "patch"];
    let mut bodies = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        for (method, op) in ops.as_object().unwrap() {
            let at = format!("{method} {path}");
            assert!(methods.contains(&method.as_str()), "{at}: not a Swagger method");
            let ok = &op["responses"]["200"];
            assert!(ok["description"].is_string() && ok["schema"].is_object(), "{at}: no 200 response schema");
            let params = op["parameters"].as_array().unwrap_or_else(|| panic!("{at}: no parameter list"));
            let mut in_body = 0;
            for p in params {
                let name = p["name"].as_str().unwrap_or_else(|| panic!("{at}: a parameter without a name"));
                match p["in"].as_str() {
                    Some("body") => {
                        in_body += 1;
                        let schema = &p["schema"];
                        assert!(schema["properties"].is_object(), "{at}: body without properties: {p}");
                        assert!(schema["example"].is_object(), "{at}: body without an example: {p}");
                        assert!(p.get("type").is_none(), "{at}: a body parameter has a schema, not a type");
                        let props = schema["properties"].as_object().unwrap();
                        for required in schema["required"].as_array().into_iter().flatten() {
                            assert!(
                                props.contains_key(required.as_str().unwrap()),
                                "{at}: {required} is not a property"
                            );
                        }
                        for key in schema["example"].as_object().unwrap().keys() {
                            assert!(props.contains_key(key), "{at}: example field {key} is not a property");
                        }
                    }
                    Some("path") => {
                        assert_eq!(p["required"], json!(true), "{at}: path parameter {name} must be required");
                        assert!(path.contains(&format!("{{{name}}}")), "{at}: {name} is not in the path");
                    }
                    Some("query" | "header" | "formData") => {}
                    other => panic!("{at}: parameter {name} in {other:?}"),
                }
                if p["in"] != "body" {
                    let ty = p["type"].as_str().unwrap_or_default();
                    assert!(
                        ["string", "integer", "number", "boolean", "array", "file"].contains(&ty),
                        "{at}: {name}: {ty:?}"
                    );
                }
            }
            assert!(in_body <= 1, "{at}: more than one body parameter");
            bodies += in_body;
        }
    }
    assert!(bodies >= 5, "only {bodies} body parameters documented");
}

#[test]
fn settings_shape_and_persistence() {
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), ..Opts::default() });
    let key = stored_key(&state.0);
    let r = get(&d, "/settings", &key);
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["settings"]["api"]["key"], json!(key));
    assert_eq!(body["settings"]["api"]["http_port"], json!(d.port));
    assert_eq!(body["ports"][0], json!(d.port));
    insta::assert_json_snapshot!("settings", body, {
        ".settings.api.key" => "[key]",
        ".settings.api.http_port" => "[port]",
        ".settings.libtorrent.port" => "[port]",
        ".settings.download_defaults.saveas" => "[saveas]",
        ".ports" => "[ports]",
    });

    // Invalid values: 400 with a clear message, nothing written.
    let conf = state.0.join("triblerd.conf");
    let before = std::fs::read(&conf).unwrap();
    for bad in [
        r#"{"download_defaults": {"number_hops": 7}}"#,
        r#"{"download_defaults": {"number_hops": "1"}}"#,
        r#"{"download_defaults": {"seeding_mode": "sometimes"}}"#,
        r#"{"download_defaults": {"seeding_ratio": -1}}"#,
        r#"{"libtorrent": {"max_upload_rate": -5}}"#,
        r#"{"libtorrent": {"port": 70000}}"#,
        r#"{"libtorrent": {"utp": "yes"}}"#,
        r#"{"libtorrent": {"encryption": 3}}"#,
        r#"{"libtorrent": {"no_such_key": 1}}"#,
        r#"{"no_such_section": {"a": 1}}"#,
        r#"{"api": {"http_host": "somewhere"}}"#,
        r#"{"libtorrent": {"max_download_rate": 100}, "download_defaults": {"number_hops": 4}}"#,
        r#"[1, 2]"#,
    ] {
        let r = post_settings(&d, &key, bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string(), "{bad}");
    }
    insta::assert_json_snapshot!(
        "settings_invalid",
        post_settings(&d, &key, r#"{"download_defaults": {"number_hops": 7, "seeding_mode": "sometimes"}}"#).json()
    );
    assert_eq!(std::fs::read(&conf).unwrap(), before, "an invalid POST changed triblerd.conf");
    assert_eq!(get(&d, "/settings", &key).json()["settings"]["libtorrent"]["max_download_rate"], json!(0));

    // Valid values: applied, written, still there after a restart. Values equal to the ones in
    // force are accepted for every key (clients post back what they read).
    let r = post_settings(
        &d,
        &key,
        r#"{"Tribler": {}, "trustchain": {}, "download_defaults": {"number_hops": 0, "seeding_mode": "forever",
            "seeding_ratio": 2, "saveas": "/tmp/shoal-test-downloads"}, "libtorrent": {"max_upload_rate": 1000, "lsd": false, "encryption": 2},
            "gui_test_mode": false}"#,
    );
    assert_eq!((r.status, r.json()), (200, json!({"modified": true})));
    let check = |s: &Value| {
        assert_eq!(s["download_defaults"]["saveas"], json!("/tmp/shoal-test-downloads"));
        assert_eq!(s["libtorrent"]["max_upload_rate"], json!(1000));
        assert_eq!(s["libtorrent"]["lsd"], json!(false));
        assert_eq!(s["libtorrent"]["encryption"], json!(2));
    };
    check(&get(&d, "/settings", &key).json()["settings"]);
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("[download_defaults]") && text.contains("saveas=/tmp/shoal-test-downloads"), "{text}");
    d.shutdown(&key);

    let d = start(Opts { state: Some(&state.0), ..Opts::default() });
    assert_eq!(stored_key(&state.0), key, "the key changed across a restart");
    check(&get(&d, "/settings", &key).json()["settings"]);
    d.shutdown(&key);
}

#[test]
fn key_generation_and_environment() {
    // First start without a key: a 32-hex key is generated, stored and its place reported.
    let state = TempDir::new();
    let d = start(Opts { state: Some(&state.0), ..Opts::default() });
    let key = stored_key(&state.0);
    assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    let conf = state.0.join("triblerd.conf").display().to_string();
    assert!(d.log.iter().any(|l| l.contains("generated") && l.contains(&conf)), "{:#?}", d.log);
    assert_eq!(get(&d, "/settings", "").status, 401);
    assert_eq!(get(&d, "/settings", &key).status, 200);
    d.shutdown(&key);

    // CORE_API_KEY wins over the stored key (which stays as it is); --api-key wins over both.
    let d = start(Opts { state: Some(&state.0), env: vec![("CORE_API_KEY", "envkey".into())], ..Opts::default() });
    assert_eq!(get(&d, "/settings", &key).status, 401);
    assert_eq!(get(&d, "/settings", "envkey").status, 200);
    d.shutdown("envkey");
    assert_eq!(stored_key(&state.0), key);
    let d = start(Opts {
        state: Some(&state.0),
        args: vec!["--api-key", "flagkey"],
        env: vec![("CORE_API_KEY", "envkey".into())],
        ..Opts::default()
    });
    assert_eq!(get(&d, "/settings", "envkey").status, 401);
    assert_eq!(get(&d, "/settings", "flagkey").status, 200);
    d.shutdown("flagkey");

    // CORE_API_PORT and TSTATEDIR.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let env_state = TempDir::new();
    let d = start(Opts {
        env: vec![
            ("CORE_API_PORT", free.to_string()),
            ("TSTATEDIR", env_state.0.display().to_string()),
            ("CORE_API_KEY", "k".into()),
        ],
        no_port_flag: true,
        ..Opts::default()
    });
    assert_eq!(d.port, free);
    assert!(env_state.0.join("node_id").is_file());
    d.shutdown("k");

    // No state dir given: $XDG_DATA_HOME/shoal.
    let xdg = TempDir::new();
    let d = start(Opts { env: vec![("XDG_DATA_HOME", xdg.0.display().to_string())], ..Opts::default() });
    let state = xdg.0.join("shoal");
    let key = stored_key(&state);
    d.shutdown(&key);
}

#[test]
fn events_stream_and_shutdown() {
    let state = TempDir::new();
    let mut d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "k"], ..Opts::default() });
    let (meta, mut first) = events(&d, "k");
    assert_eq!((meta.status, meta.content_type.as_str()), (200, "text/event-stream"));
    assert_eq!(meta.header("cache-control"), Some("no-cache"));
    let start = first.next().unwrap();
    assert_eq!(start["topic"], "events_start");
    assert!(start.get("args").is_none());
    let public_key = start["kwargs"]["public_key"].as_str().unwrap().to_string();
    assert!(public_key.len() == 64 && public_key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(start["kwargs"]["version"], env!("CARGO_PKG_VERSION"));
    let (_, mut second) = events(&d, "k");
    assert_eq!(second.next().unwrap()["kwargs"]["public_key"], json!(public_key));
    assert_eq!(events(&d, "wrong").0.status, 401);

    // An unhandled error reaches every client as tribler_exception.
    assert_eq!(post_settings(&d, "k", "{").status, 500);
    for sse in [&mut first, &mut second] {
        let e = sse.next().unwrap();
        assert_eq!(e["topic"], "tribler_exception");
        assert!(e.get("args").is_none());
        let error = &e["kwargs"]["error"];
        assert_eq!(error["type"], "JSONDecodeError");
        for field in
            ["text", "event", "additional_information", "long_text", "context", "last_core_output", "should_stop"]
        {
            assert!(error.get(field).is_some(), "{field} missing from {error}");
        }
    }

    // PUT /shutdown: tribler_shutdown_state, then the stream ends and the daemon exits 0.
    let r = request(&d, "PUT", "/shutdown", &[("X-Api-Key", "k")], None);
    assert_eq!((r.status, r.json()), (200, json!({"shutdown": true})));
    let mut states = Vec::new();
    while let Some(e) = first.next() {
        assert_eq!(e["topic"], "tribler_shutdown_state", "{e}");
        assert!(e["args"][0].is_string());
        assert_eq!(e["kwargs"], json!({}));
        states.push(e);
    }
    assert!(!states.is_empty(), "no tribler_shutdown_state before the stream ended");
    let status = wait_exit(d.child.take().unwrap());
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read_to_string(state.0.join("node_id")).unwrap().trim(), public_key);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_cleanly() {
    let state = TempDir::new();
    let mut d = start(Opts { state: Some(&state.0), args: vec!["--api-key", "k"], ..Opts::default() });
    let (_, mut sse) = events(&d, "k");
    assert_eq!(sse.next().unwrap()["topic"], "events_start");
    let child = d.child.take().unwrap();
    let kill = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(kill.success());
    let mut saw_shutdown = false;
    while let Some(e) = sse.next() {
        saw_shutdown |= e["topic"] == "tribler_shutdown_state";
    }
    assert!(saw_shutdown);
    let status = wait_exit(child);
    assert!(status.success(), "{status:?}");
}
