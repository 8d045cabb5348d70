//! Tags and other statements (`/knowledge`, §6.6 of the Tribler reference) over real HTTP:
//! Tribler's shapes in both spellings, hostile bodies, a restart, `tags=` search, and the
//! content items our rules extract from names.
//!
//! Torrents are made with `shoal create` and looked at with `GET /torrentinfo`, which gives
//! each its entry, as a user's would.

mod common;

use std::path::Path;
use std::process::Command;

use common::{request, start, Daemon, Opts, Resp, TempDir};
use serde_json::{json, Value};

const KEY: &str = "testkey123";

fn daemon(state: &Path) -> Daemon {
    start(Opts { state: Some(state), args: vec!["--api-key", KEY], ..Opts::default() })
}

fn ok(d: &Daemon, path: &str) -> Value {
    let r = request(d, "GET", path, &[("X-Api-Key", KEY)], None);
    assert_eq!(r.status, 200, "GET {path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A PATCH as Tribler's GUI sends it: JSON in a form-encoded body.
fn patch(d: &Daemon, infohash: &str, body: &[u8]) -> Resp {
    let headers = [("X-Api-Key", KEY), ("Content-Type", "application/x-www-form-urlencoded")];
    request(d, "PATCH", &format!("/knowledge/{infohash}"), &headers, Some(body))
}

fn tags_body(tags: &[&str]) -> Vec<u8> {
    let statements: Vec<Value> = tags.iter().map(|t| json!({"predicate": 101, "object": t})).collect();
    serde_json::to_vec(&json!({ "statements": statements })).unwrap()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Makes a torrent of one file named `name` and shows it to the daemon; returns its info-hash.
fn torrent(d: &Daemon, tmp: &TempDir, name: &str) -> String {
    let data = tmp.join("data").join(name);
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, name.repeat(1000)).unwrap();
    let out = tmp.join(format!("{name}.torrent"));
    let o = Command::new(env!("CARGO_BIN_EXE_shoal")).arg("create").arg(&data).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "shoal create: {}", String::from_utf8_lossy(&o.stderr));
    ok(d, &format!("/torrentinfo?uri={}", enc(&format!("file:{}", out.display()))));
    let found = ok(d, &format!("/search?txt_filter={}", enc(&format!("\"{name}\""))));
    found["results"][0]["infohash"].as_str().unwrap().to_string()
}

/// `(predicate, object)` of each statement on the entry of `infohash`, from a local search.
fn statements(d: &Daemon, infohash: &str) -> Vec<(i64, String)> {
    let all = ok(d, "/metadata/search/local?last=1000");
    let e = all["results"].as_array().unwrap().iter().find(|e| e["infohash"] == infohash).expect("the entry");
    e["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!((&s["subject_type"], &s["subject"]), (&json!(102), &json!(infohash)), "{s}");
            (s["predicate"].as_i64().unwrap(), s["object"].as_str().unwrap().to_string())
        })
        .collect()
}

fn tag(t: &str) -> (i64, String) {
    (101, t.to_string())
}

fn names(v: &Value) -> Vec<&str> {
    v["results"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect()
}

#[test]
fn tags_shapes_in_both_spellings() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let ih = torrent(&d, &tmp, "multi");
    let r = patch(&d, &ih, &tags_body(&["linux", "sample"]));
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json"));
    insta::assert_json_snapshot!("knowledge_patch", r.json());
    insta::assert_json_snapshot!("knowledge_tag_suggestions", ok(&d, &format!("/knowledge/{ih}/tag_suggestions")));
    // The entry now carries the statements, in each build's field order (Tribler's
    // metadata_search_local_tags.json and the release's search.json).
    let redact = |v: Value| {
        let text = serde_json::to_string(&v).unwrap().replace(&ih, "[infohash]");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let p = redact(ok(&d, "/metadata/search/local?txt_filter=multi"));
    insta::assert_json_snapshot!("search_local_tags_pypi", p, {
        ".results[].id" => "[id]", ".results[].public_key" => "[public_key]", ".results[].created" => "[created]",
    });
    let r = redact(ok(&d, "/search?txt_filter=multi&metadata_type=300"));
    insta::assert_json_snapshot!("search_tags_release", r, {
        ".results[].id" => "[id]", ".results[].public_key" => "[public_key]", ".results[].created" => "[created]",
    });
    let keys = |s: &Value| s.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&p["results"][0]["statements"][0]), ["subject_type", "subject", "predicate", "object"]);
    assert_eq!(keys(&r["results"][0]["statements"][0]), ["subject_type", "object", "predicate", "subject"]);
    // Popular torrents carry them too (none is popular before a health check; the shape of an
    // entry there is the same `to_json`).
    assert_eq!(ok(&d, "/metadata/torrents/popular")["results"], json!([]));

    // Tribler's errors.
    let r = patch(&d, &ih, &tags_body(&["x"]));
    assert_eq!(r.status, 400);
    insta::assert_json_snapshot!("knowledge_patch_bad_tag", r.json());
    let r = request(&d, "GET", "/knowledge/abc/tag_suggestions", &[("X-Api-Key", KEY)], None);
    assert_eq!(r.status, 400);
    insta::assert_json_snapshot!("knowledge_tag_suggestions_bad", r.json());
    d.shutdown(KEY);
}

#[test]
fn hostile_statements_are_refused_and_store_nothing() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let ih = torrent(&d, &tmp, "hostile target");
    assert_eq!(patch(&d, &ih, &tags_body(&["kept"])).status, 200);
    let before = statements(&d, &ih);
    assert_eq!(before, [tag("kept")]);

    let long = "x".repeat(51);
    let wide = "é".repeat(51);
    let ten_thousand: Vec<String> = (0..10_000).map(|i| format!("tag{i}")).collect();
    let ten_thousand: Vec<&str> = ten_thousand.iter().map(String::as_str).collect();
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        // Tags outside 2..50 characters, alone or after a good one (nothing of the body is kept).
        (ih.clone(), tags_body(&["a"]), "Invalid tag length"),
        (ih.clone(), tags_body(&["good", ""]), "Invalid tag length"),
        (ih.clone(), tags_body(&["good", &long]), "Invalid tag length"),
        (ih.clone(), tags_body(&[&wide]), "Invalid tag length"),
        // Ten thousand statements in one PATCH.
        (ih.clone(), tags_body(&ten_thousand), "Too many statements: 10000 (at most 1000)"),
        // Unknown predicates and wrong types.
        (ih.clone(), br#"{"statements": [{"predicate": 7777, "object": "linux"}]}"#.to_vec(), "unknown predicate 7777"),
        (ih.clone(), br#"{"statements": [{"predicate": 101, "object": ["linux"]}]}"#.to_vec(), "must be a string"),
        (ih.clone(), br#"{"statements": "linux"}"#.to_vec(), "statements parameter missing"),
        (ih.clone(), b"not json at all".to_vec(), "Invalid JSON body"),
        (ih.clone(), Vec::new(), "Invalid JSON body"),
        // Info-hashes that are short, long or not hex.
        ("abcd".into(), tags_body(&["linux"]), "Invalid infohash"),
        (format!("{ih}0"), tags_body(&["linux"]), "Invalid infohash"),
        ("zz".repeat(20), tags_body(&["linux"]), "Invalid infohash"),
    ];
    for (target, body, want) in &cases {
        let r = patch(&d, target, body);
        assert_eq!(r.status, 400, "{want}: {}", String::from_utf8_lossy(&r.body));
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(want), "{want}: {message}");
    }
    assert_eq!(statements(&d, &ih), before, "nothing of a refused body was stored");
    assert_eq!(ok(&d, "/search?tags=good")["results"], json!([]));
    // The daemon is still serving, and a good body still works.
    assert_eq!(patch(&d, &ih, &tags_body(&["kept", "also"])).status, 200);
    assert_eq!(statements(&d, &ih), [tag("kept"), tag("also")]);
    d.shutdown(KEY);
}

#[test]
fn tags_persist_across_a_restart_and_are_searchable() {
    let tmp = TempDir::new();
    let state = tmp.join("state");
    let d = daemon(&state);
    let a = torrent(&d, &tmp, "alpha release");
    let b = torrent(&d, &tmp, "beta release");
    let c = torrent(&d, &tmp, "gamma notes");
    assert_eq!(patch(&d, &a, &tags_body(&["linux", "Sample"])).status, 200);
    assert_eq!(patch(&d, &b, &tags_body(&["linux"])).status, 200);
    assert_eq!(patch(&d, &c, &tags_body(&["docs"])).status, 200);
    // Replacing: b's tags become "other" only; its "linux" is removed.
    assert_eq!(patch(&d, &b, &tags_body(&["other"])).status, 200);
    d.shutdown(KEY);

    let d = daemon(&state);
    assert_eq!(statements(&d, &a), [tag("Sample"), tag("linux")]);
    assert_eq!(statements(&d, &b), [tag("other")]);
    assert_eq!(statements(&d, &c), [tag("docs")]);
    // Repeated tags= is an intersection; tags match without case; with text too.
    assert_eq!(names(&ok(&d, "/metadata/search/local?tags=linux")), ["alpha release"]);
    assert_eq!(names(&ok(&d, "/search?tags=LINUX&tags=sample&metadata_type=300")), ["alpha release"]);
    assert_eq!(names(&ok(&d, "/search?tags=linux&tags=docs")), Vec::<&str>::new());
    assert_eq!(names(&ok(&d, "/search?tags=other&txt_filter=release")), ["beta release"]);
    assert_eq!(names(&ok(&d, "/search?tags=other&txt_filter=gamma")), Vec::<&str>::new());
    let r = ok(&d, "/metadata/search/local?tags=docs&include_total=1");
    assert_eq!((names(&r), &r["total"]), (vec!["gamma notes"], &json!(1)));
    // Clearing a torrent's statements removes them from search too.
    assert_eq!(patch(&d, &a, br#"{"statements": []}"#).status, 200);
    assert_eq!(names(&ok(&d, "/search?tags=linux")), Vec::<&str>::new());
    d.shutdown(KEY);
}

#[test]
fn names_give_content_items_and_tags_by_our_rules() {
    let tmp = TempDir::new();
    let d = daemon(&tmp.join("state"));
    let ih = torrent(&d, &tmp, "ubuntu-22.04.3-desktop-amd64.iso");
    assert_eq!(statements(&d, &ih), [tag("iso"), (103, "Ubuntu 22.04".into())]);
    let e = &ok(&d, "/search?txt_filter=ubuntu")["results"][0];
    assert_eq!(e["tag_processor_version"], 1);
    assert_eq!(names(&ok(&d, "/search?tags=iso")), ["ubuntu-22.04.3-desktop-amd64.iso"]);
    // The user's editor keeps the content item, adds a tag and drops "iso": that is final.
    let body =
        json!({"statements": [{"predicate": 101, "object": "linux"}, {"predicate": 103, "object": "Ubuntu 22.04"}]});
    assert_eq!(patch(&d, &ih, &serde_json::to_vec(&body).unwrap()).status, 200);
    assert_eq!(statements(&d, &ih), [(103, "Ubuntu 22.04".into()), tag("linux")]);
    assert_eq!(names(&ok(&d, "/search?tags=iso")), Vec::<&str>::new());
    let other = torrent(&d, &tmp, "[YTS] Some Film (2019).mkv");
    assert_eq!(statements(&d, &other), [tag("yts"), tag("2019"), tag("mkv")]);
    d.shutdown(KEY);
}
