//! The daemon's own request and response types: handlers never see the HTTP framework.
//!
//! Error shapes follow §1.5 of the Tribler reference:
//! handled errors are `{"error": "<message>"}`, unknown routes and oversized bodies are
//! `{"error": {"handled": true, "message": …}}`, and everything unexpected is
//! `{"error": {"handled": false, "code": …, "message": …}}` (and a `tribler_exception` event).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

use super::state::Daemon;

/// The largest request body accepted (aiohttp's `client_max_size` in Tribler).
pub const MAX_BODY: usize = 16 << 20;

/// The HTTP methods routes are declared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Lower-case name, as Swagger keys operations.
    pub fn lower(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
}

/// A request as handlers see it.
#[derive(Debug, Default)]
pub struct ApiRequest {
    /// Upper-case method name as received (`HEAD` is answered by the GET handler).
    pub method: String,
    /// The decoded path, without the query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Values of the route pattern's `{name}` segments.
    pub params: Vec<(String, String)>,
    /// The body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of a `{name}` path segment.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A cookie from the `Cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"'))
    }

    /// The body parsed as JSON, whatever the Content-Type (the Tribler GUI sends JSON as
    /// `application/x-www-form-urlencoded`). A body that is not JSON is an unhandled error,
    /// as in Tribler.
    pub fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::unhandled("JSONDecodeError", e.to_string()))
    }
}

/// A stream body: any runtime-neutral async reader.
pub type Stream = Box<dyn futures_lite::AsyncRead + Send + Sync + Unpin + 'static>;

/// A response body.
pub enum Body {
    Bytes(Vec<u8>),
    /// Sent chunked, as the reader produces it.
    Stream(Stream),
    /// Exactly this many bytes from the reader, with a `Content-Length`.
    Sized(Stream, u64),
}

/// A response as handlers produce it.
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl ApiResponse {
    /// A JSON response (`Content-Type: application/json`, as Tribler sends it: no charset).
    /// serde_json never writes a bare `NaN`/`Infinity`, so the body is always valid JSON.
    pub fn json(status: u16, value: &Value) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: Body::Bytes(serde_json::to_vec(value).expect("a JSON value always serializes")),
        }
    }

    /// 200 with a JSON body.
    pub fn ok(value: Value) -> ApiResponse {
        ApiResponse::json(200, &value)
    }
}

/// Why a handler failed.
#[derive(Debug)]
pub enum ApiError {
    /// A refusal the handler expected: `{"error": "<message>"}` with this status.
    Handled(u16, String),
    /// An exception the endpoint caught: 500 `{"error": {"handled": true, "code", "message"}}`.
    HandledException {
        /// A short class name (`OSError`, …).
        code: String,
        message: String,
    },
    /// A bare status with an empty body (Tribler's answer when a search fails in its database).
    Empty(u16),
    /// Something unexpected: 500 with the unhandled shape, reported on `/events`.
    Unhandled {
        /// A short class name, like Tribler's exception class (`JSONDecodeError`, …).
        code: String,
        message: String,
    },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::Handled(400, message.into())
    }

    pub fn unhandled(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::Unhandled { code: code.to_string(), message: message.into() }
    }
}

/// `401 {"error": "Unauthorized access"}`.
pub fn unauthorized() -> ApiResponse {
    ApiResponse::json(401, &json!({"error": "Unauthorized access"}))
}

/// Tribler's 404 for an unknown route.
pub fn not_found(path: &str) -> ApiResponse {
    ApiResponse::json(404, &json!({"error": {"handled": true, "message": format!("Could not find {path}")}}))
}

/// `413` for a body over [`MAX_BODY`].
pub fn too_large(actual: u64) -> ApiResponse {
    let message = format!("Maximum request body size {MAX_BODY} exceeded, actual body size {actual}");
    ApiResponse::json(413, &json!({"error": {"handled": true, "message": message}}))
}

/// A method the path does not serve: like aiohttp's 405, wrapped by Tribler as an unhandled 500.
pub fn method_not_allowed() -> ApiError {
    ApiError::unhandled("HTTPMethodNotAllowed", "Method Not Allowed")
}

/// What a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<ApiResponse, ApiError>> + Send>>;
/// A handler: the daemon's state and the request.
pub type Handler = fn(Arc<Daemon>, ApiRequest) -> HandlerFuture;

/// Where a Swagger parameter lives.
#[derive(Clone, Copy, Debug)]
pub enum In {
    Path,
    Query,
    Header,
    /// The JSON body, described by this schema (with an example) in the Swagger description.
    Body(fn() -> Value),
}

/// A documented parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub required: bool,
    /// Swagger type (`string`, `integer`, `boolean`, `object`, …).
    pub ty: &'static str,
    pub description: &'static str,
}

/// One route: everything needed to serve it and to document it.
pub struct Route {
    pub method: Method,
    /// The path, with `{name}` for a variable segment (Swagger syntax).
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// MIME type of the 200 response.
    pub produces: &'static str,
    /// JSON schema of the 200 response.
    pub response: fn() -> Value,
    pub handler: Handler,
}

/// Runs a route's handler (or the 404/405 fallbacks, when `route` is `None`), turning errors
/// into Tribler's shapes and reporting unhandled ones on the event stream. Auth and the body
/// limit have been checked by then.
pub async fn dispatch(daemon: Arc<Daemon>, handler: Option<Handler>, req: ApiRequest) -> ApiResponse {
    let result = match handler {
        Some(h) => h(daemon.clone(), req).await,
        None => Err(method_not_allowed()),
    };
    match result {
        Ok(resp) => resp,
        Err(ApiError::Handled(status, message)) => ApiResponse::json(status, &json!({ "error": message })),
        Err(ApiError::Empty(status)) => {
            ApiResponse { status, content_type: "application/json", headers: Vec::new(), body: Body::Bytes(Vec::new()) }
        }
        Err(ApiError::HandledException { code, message }) => {
            ApiResponse::json(500, &json!({"error": {"handled": true, "code": code, "message": message}}))
        }
        Err(ApiError::Unhandled { code, message }) => {
            daemon.events.exception(&code, &message);
            ApiResponse::json(500, &json!({"error": {"handled": false, "code": code, "message": message}}))
        }
    }
}
