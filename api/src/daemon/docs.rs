//! `GET /docs` (Swagger UI) and `GET /docs/swagger.json`: the Swagger 2.0 description is
//! generated from the route table, so it cannot drift from what is served.
//!
//! The UI's files come from the `utoipa-swagger-ui` crate (its `vendored` feature ships them),
//! served from memory: no CDN, nothing downloaded, nothing copied into this repository.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};

use super::access;
use super::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture, In, Route};
use super::state::Daemon;

/// Where the UI finds the description.
const SPEC_URL: &str = "/docs/swagger.json";

/// The Swagger 2.0 document for `routes`.
pub fn swagger(routes: &[Route], version: &str) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|p| match p.location {
                In::Body(schema) => json!({
                    "in": "body", "name": p.name, "required": p.required, "description": p.description,
                    "schema": schema(),
                }),
                In::Path | In::Query | In::Header => json!({
                    "in": match p.location { In::Path => "path", In::Header => "header", _ => "query" },
                    "name": p.name, "required": p.required || matches!(p.location, In::Path),
                    "type": p.ty, "description": p.description,
                }),
            })
            .collect();
        let has_body = r.params.iter().any(|p| matches!(p.location, In::Body(_)));
        let mut op = json!({
            "tags": [r.tag],
            "summary": r.summary,
            "parameters": params,
            "produces": [r.produces],
            "responses": {
                "200": {"description": "success", "schema": (r.response)()},
                "401": {"description": "missing or wrong API key", "schema": {"$ref": "#/definitions/Unauthorized"}},
                "500": {"description": "unexpected error", "schema": {"$ref": "#/definitions/UnhandledError"}},
            },
        });
        if has_body {
            // Tribler's GUI sends JSON bodies under any content type; JSON is what is meant.
            op["consumes"] = json!(["application/json"]);
        }
        if access::exempt_from_auth(r.path) {
            op["security"] = json!([]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.lower()] = op;
    }
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Shoal REST API documentation (Tribler 7.13 compatible)",
            "version": version,
        },
        "securityDefinitions": {"apiKey": {"type": "apiKey", "name": "X-Api-Key", "in": "header"}},
        "security": [{"apiKey": []}],
        "definitions": {
            "Unauthorized": {"type": "object", "properties": {"error": {"type": "string"}}},
            "HandledError": {"type": "object", "properties": {"error": {"type": "string"}}},
            "UnhandledError": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "handled": {"type": "boolean"}, "code": {"type": "string"}, "message": {"type": "string"},
            }}}},
        },
        "paths": paths,
    })
}

/// The UI's configuration: the one description it shows.
fn ui_config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::new([SPEC_URL]))).clone()
}

/// A file of the Swagger UI (`index.html`, `swagger-ui-bundle.js`, …), or `None`.
fn ui_file(name: &str) -> Result<Option<(Vec<u8>, String)>, ApiError> {
    match utoipa_swagger_ui::serve(name, ui_config()) {
        Ok(file) => Ok(file.map(|f| (f.bytes.into_owned(), f.content_type))),
        Err(e) => Err(ApiError::unhandled("SwaggerUiError", e.to_string())),
    }
}

/// A 200 response holding a UI file, with a `Content-Type` from its name.
fn ui_response(bytes: Vec<u8>, content_type: &str) -> ApiResponse {
    // Only the types the UI's files have; anything else is served as bytes.
    let content_type = match content_type {
        "text/html" => "text/html; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "application/javascript" | "text/javascript" => "application/javascript; charset=utf-8",
        "image/png" => "image/png",
        _ => "application/octet-stream",
    };
    ApiResponse { status: 200, content_type, headers: Vec::new(), body: Body::Bytes(bytes) }
}

/// `GET /docs`: the Swagger UI page. Its files are named relative to the page, so a `<base>`
/// makes them resolve under `/docs/` although the page itself is served without the slash.
pub fn page(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let (html, _) = ui_file("index.html")?
            .ok_or_else(|| ApiError::unhandled("SwaggerUiError", "the Swagger UI has no index.html"))?;
        let html = String::from_utf8_lossy(&html).replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1);
        Ok(ui_response(html.into_bytes(), "text/html"))
    })
}

/// `GET /docs/{file}`: the UI's scripts, styles and icons.
pub fn asset(_d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let name = req.param("file").unwrap_or_default().to_string();
        match ui_file(&name)? {
            Some((bytes, content_type)) => Ok(ui_response(bytes, &content_type)),
            None => Err(ApiError::Handled(404, format!("no such file of the documentation: {name}"))),
        }
    })
}

/// Schemas, with an example each, of the JSON bodies routes accept (`in: body` parameters).
pub mod body {
    use serde_json::{json, Value};

    fn int() -> Value {
        json!({"type": "integer"})
    }

    fn string() -> Value {
        json!({"type": "string"})
    }

    fn boolean() -> Value {
        json!({"type": "boolean"})
    }

    fn file_indices() -> Value {
        json!({"type": "array", "items": {"type": "integer", "minimum": 0}, "description": "indices of the files to download"})
    }

    /// `POST /settings`: a partial settings tree.
    pub fn settings() -> Value {
        json!({
            "type": "object",
            "description": "section -> key -> value, any part of the tree of GET /settings; values are validated and \
                an invalid one refuses the whole request",
            "properties": {
                "libtorrent": {"type": "object", "properties": {
                    "max_download_rate": {"type": "integer", "minimum": 0, "description": "bytes/s, 0 = unlimited"},
                    "max_upload_rate": {"type": "integer", "minimum": 0, "description": "bytes/s, 0 = unlimited"},
                    "port": {"type": "integer", "minimum": 0, "maximum": 65535, "description": "peer port, used from the next start"},
                    "dht": boolean(),
                    "lsd": boolean(),
                    "encryption": {"type": "integer", "minimum": 0, "maximum": 2, "description": "peer connection encryption (MSE/PE): 0 disabled, 1 enabled (encrypted preferred, plaintext accepted), 2 forced; used from the next start"},
                }},
                "download_defaults": {"type": "object", "properties": {
                    "saveas": {"type": "string", "description": "where downloads go when PUT /downloads names no destination"},
                    "number_hops": {"type": "integer", "minimum": 0, "maximum": 3},
                }},
            },
            "additionalProperties": {"type": "object"},
            "example": {"libtorrent": {"max_download_rate": 1_000_000, "max_upload_rate": 250_000}},
        })
    }

    /// `PUT /downloads` with a JSON body (a raw .torrent body takes its options in the query).
    pub fn add_download() -> Value {
        json!({
            "type": "object",
            "required": ["uri"],
            "properties": {
                "uri": {"type": "string", "description": "file:, http:, https: or magnet: URI of the torrent"},
                "destination": {"type": "string", "description": "directory to download into"},
                "selected_files": file_indices(),
                "anon_hops": {"type": "integer", "minimum": 0, "maximum": 3, "description": "above 0 waits in CIRCUITS: no tunnels here"},
                "safe_seeding": boolean(),
            },
            "example": {"uri": "file:/data/x.torrent", "destination": "/data/dl", "selected_files": [0, 2]},
        })
    }

    /// `POST /createtorrent`.
    pub fn create_torrent() -> Value {
        json!({
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {"type": "array", "items": string(), "description": "absolute paths of the files to include"},
                "name": string(),
                "description": {"type": "string", "description": "stored as the torrent's comment"},
                "trackers": {"type": "array", "items": string()},
                "export_dir": {"type": "string", "description": "also write the .torrent into this directory"},
            },
            "example": {"files": ["/data/album/01.flac", "/data/album/02.flac"], "name": "album",
                "trackers": ["http://tracker.example/announce"]},
        })
    }

    /// `PATCH /downloads/{infohash}`.
    pub fn change_download() -> Value {
        json!({
            "type": "object",
            "properties": {
                "state": {"type": "string", "enum": ["resume", "stop", "recheck", "move_storage"]},
                "dest_dir": {"type": "string", "description": "absolute directory, with state move_storage"},
                "selected_files": file_indices(),
                "anon_hops": int(),
                "vod_mode": boolean(),
                "fileindex": {"type": "integer", "description": "the file to stream, with vod_mode true"},
            },
            "example": {"state": "move_storage", "dest_dir": "/data/done"},
        })
    }

    /// `DELETE /downloads/{infohash}`.
    pub fn remove_download() -> Value {
        json!({
            "type": "object",
            "required": ["remove_data"],
            "properties": {"remove_data": {"type": "boolean", "description": "also delete the downloaded files"}},
            "example": {"remove_data": true},
        })
    }
}
