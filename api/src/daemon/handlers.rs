//! Endpoint handlers: our request in, our response out (§3 of the reference, `/events`, docs).

use std::sync::Arc;

use serde_json::{json, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture};
use super::{docs, Daemon};

/// `GET /settings`: `{"settings": {…}, "ports": […]}`.
pub fn get_settings(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::ok(json!({"settings": d.settings_tree(), "ports": d.ports()}))) })
}

/// `POST /settings`: deep-merges a partial tree. Every value is validated first; an invalid
/// one is refused with 400 and nothing is written (Tribler would write it).
pub fn post_settings(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let patch = req.json()?;
        let mut settings = d.settings.lock().unwrap_or_else(|e| e.into_inner());
        let next = settings.merged(&patch).map_err(ApiError::bad_request)?;
        next.save().map_err(|e| ApiError::Handled(500, e))?;
        *settings = next;
        Ok(ApiResponse::ok(json!({"modified": true})))
    })
}

/// `PUT /shutdown`: answers, then the daemon stops cleanly.
pub fn shutdown(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        d.request_stop();
        Ok(ApiResponse::ok(json!({"shutdown": true})))
    })
}

/// `GET /events`: the event stream, `events_start` first.
pub fn events(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        Ok(ApiResponse {
            status: 200,
            content_type: "text/event-stream",
            headers: vec![("cache-control", "no-cache".into()), ("connection", "keep-alive".into())],
            body: Body::Stream(Box::new(d.events.subscribe())),
        })
    })
}

/// `GET /docs`: a page describing the API.
pub fn docs_page(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        Ok(ApiResponse {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: Body::Bytes(docs::UI_PAGE.as_bytes().to_vec()),
        })
    })
}

/// `GET /docs/swagger.json`.
pub fn swagger(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let mut resp = ApiResponse::ok(d.swagger.clone());
        resp.content_type = "application/json; charset=utf-8";
        Ok(resp)
    })
}

/// Response schemas, for the Swagger description.
pub mod schema {
    use super::*;

    pub fn settings() -> Value {
        json!({"type": "object", "properties": {
            "settings": {"type": "object", "description": "the whole settings tree (section -> key -> value)"},
            "ports": {"type": "array", "items": {"type": "integer"}},
        }})
    }

    pub fn modified() -> Value {
        json!({"type": "object", "properties": {"modified": {"type": "boolean"}}})
    }

    pub fn shutdown() -> Value {
        json!({"type": "object", "properties": {"shutdown": {"type": "boolean"}}})
    }

    pub fn events() -> Value {
        json!({"type": "string", "description":
            "text/event-stream: `data: {\"topic\": …, \"args\": […], \"kwargs\": {…}}` frames; `:` heartbeats"})
    }

    pub fn html() -> Value {
        json!({"type": "string"})
    }

    pub fn swagger() -> Value {
        json!({"type": "object", "description": "this Swagger 2.0 document"})
    }
}
