//! `/knowledge` (§6.6 of the Tribler reference): the user's statements about a torrent (the
//! GUI's tag editor) and tag suggestions.

use std::sync::Arc;

use serde_json::{json, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, HandlerFuture};
use super::state::Daemon;
use super::store::statement::{is_predicate, MAX_STATEMENTS, TORRENT};
use super::store::{rules, StoreError};

/// The `{infohash}` segment as the store names the torrent (40 hex digits, lower case).
/// Tribler checks only the length; a 40-character segment that is not hex is refused too, so
/// no statement is ever about something that is not an info-hash.
fn infohash(req: &ApiRequest) -> Result<String, ApiError> {
    let raw = req.param("infohash").unwrap_or("");
    if raw.len() != 40 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("Invalid infohash"));
    }
    Ok(raw.to_ascii_lowercase())
}

fn store_failed(e: StoreError) -> ApiError {
    ApiError::HandledException { code: "DatabaseError".into(), message: e.to_string() }
}

/// The `(predicate, object)` pairs of a PATCH body, checked whole before anything is stored:
/// at most [`MAX_STATEMENTS`], each object 2–50 characters (Tribler's "Invalid tag length",
/// whatever the predicate, as in Tribler), each predicate a known resource type.
pub fn parse_statements(body: &Value) -> Result<Vec<(i64, String)>, ApiError> {
    let Some(list) = body.get("statements").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("statements parameter missing: expected {\"statements\": [...]}"));
    };
    if list.len() > MAX_STATEMENTS {
        return Err(ApiError::bad_request(format!("Too many statements: {} (at most {MAX_STATEMENTS})", list.len())));
    }
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let Some(object) = s.get("object").and_then(Value::as_str) else {
                return Err(ApiError::bad_request(format!("Invalid statement {i}: \"object\" must be a string")));
            };
            if !rules::valid_length(object) {
                return Err(ApiError::bad_request("Invalid tag length"));
            }
            match s.get("predicate").and_then(Value::as_i64) {
                Some(p) if is_predicate(p) => Ok((p, object.to_string())),
                Some(TORRENT) => Err(ApiError::bad_request(format!(
                    "Invalid statement {i}: predicate {TORRENT} (a torrent) is a subject, not a predicate"
                ))),
                Some(p) => Err(ApiError::bad_request(format!("Invalid statement {i}: unknown predicate {p}"))),
                None => Err(ApiError::bad_request(format!("Invalid statement {i}: \"predicate\" must be an integer"))),
            }
        })
        .collect()
}

/// `PATCH /knowledge/{infohash}`: replaces the user's statements about the torrent.
pub fn patch(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash(&req)?;
        let body: Value =
            serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?;
        let statements = parse_statements(&body)?;
        let changes = d.store.set_statements(ih.clone(), statements).await.map_err(store_failed)?;
        tracing::info!("statements about {ih}: {} added, {} removed", changes.added, changes.removed);
        Ok(ApiResponse::ok(json!({"success": true})))
    })
}

/// `GET /knowledge/{infohash}/tag_suggestions`.
pub fn tag_suggestions(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let ih = infohash(&req)?;
        let suggestions = d.store.tag_suggestions(ih).await.map_err(store_failed)?;
        Ok(ApiResponse::ok(json!({ "suggestions": suggestions })))
    })
}

/// Request and response schemas, for the Swagger description.
pub mod schema {
    use serde_json::{json, Value};

    /// The PATCH body.
    pub fn statements() -> Value {
        json!({"type": "object", "required": ["statements"], "properties": {"statements": {
            "type": "array", "maxItems": super::MAX_STATEMENTS, "items": {"type": "object", "properties": {
                "predicate": {"type": "integer", "description": "101 tag, 103 content item, 1-15 Dublin Core"},
                "object": {"type": "string", "minLength": 2, "maxLength": 50},
            }},
        }}, "example": {"statements": [{"predicate": 101, "object": "linux"},
                                       {"predicate": 103, "object": "Ubuntu 22.04"}]}})
    }

    /// `{"success": true}`.
    pub fn success() -> Value {
        json!({"type": "object", "properties": {"success": {"type": "boolean"}}})
    }

    /// `{"suggestions": [...]}`.
    pub fn suggestions() -> Value {
        json!({"type": "object", "properties": {"suggestions": {"type": "array", "items": {"type": "string"}}}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<Vec<(i64, String)>, ApiError>) -> String {
        match r {
            Err(ApiError::Handled(400, m)) => m,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn statements_are_checked_whole() {
        let ok = parse_statements(&json!({"statements": [{"predicate": 101, "object": "linux"},
            {"predicate": 103, "object": "Ubuntu 22.04"}, {"predicate": 8, "object": "en"}]}))
        .unwrap();
        assert_eq!(ok, [(101, "linux".into()), (103, "Ubuntu 22.04".into()), (8, "en".into())]);
        assert!(parse_statements(&json!({"statements": []})).unwrap().is_empty());
        for (body, want) in [
            (json!({"statements": [{"predicate": 101, "object": "x"}]}), "Invalid tag length"),
            (json!({"statements": [{"predicate": 101, "object": "x".repeat(51)}]}), "Invalid tag length"),
            (json!({"statements": [{"predicate": 101, "object": 5}]}), "\"object\" must be a string"),
            (json!({"statements": [{"predicate": 999, "object": "linux"}]}), "unknown predicate 999"),
            (json!({"statements": [{"predicate": 102, "object": "linux"}]}), "is a subject"),
            (json!({"statements": [{"predicate": "101", "object": "linux"}]}), "must be an integer"),
            (json!({"statements": [{"object": "linux"}]}), "must be an integer"),
            (json!({"tags": ["linux"]}), "statements parameter missing"),
            (json!([1, 2]), "statements parameter missing"),
        ] {
            let m = message(parse_statements(&body));
            assert!(m.contains(want), "{body}: {m}");
        }
        let many: Vec<Value> =
            (0..MAX_STATEMENTS + 1).map(|i| json!({"predicate": 101, "object": format!("t{i}")})).collect();
        assert_eq!(
            message(parse_statements(&json!({ "statements": many }))),
            "Too many statements: 1001 (at most 1000)"
        );
    }
}
