//! `GET /docs` and `GET /docs/swagger.json`: the Swagger 2.0 description is generated from the
//! route table, so it cannot drift from what is served.

use serde_json::{json, Map, Value};

use super::api::{In, Route};

/// The Swagger 2.0 document for `routes`.
pub fn swagger(routes: &[Route], version: &str) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|p| match p.location {
                In::Body => json!({
                    "in": "body", "name": p.name, "required": p.required, "description": p.description,
                    "schema": {"type": p.ty},
                }),
                In::Path | In::Query | In::Header => json!({
                    "in": match p.location { In::Path => "path", In::Header => "header", _ => "query" },
                    "name": p.name, "required": p.required || matches!(p.location, In::Path),
                    "type": p.ty, "description": p.description,
                }),
            })
            .collect();
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
        if super::api::exempt_from_auth(r.path) {
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

/// The `/docs` page: a self-contained viewer of `/docs/swagger.json` (no external scripts, so
/// it works offline; any Swagger UI can also be pointed at the JSON).
pub const UI_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Shoal REST API</title>
<style>
body { font-family: sans-serif; margin: 2em; }
td, th { text-align: left; padding: 0.2em 0.8em; vertical-align: top; }
code { background: #eee; }
</style>
</head>
<body>
<h1>Shoal REST API</h1>
<p>Machine-readable description (Swagger 2.0): <a href="/docs/swagger.json">/docs/swagger.json</a>.
Every route except <code>/docs*</code> needs the API key: header <code>X-Api-Key</code>,
query parameter <code>apikey</code> or cookie <code>api_key</code>.</p>
<table id="routes"><tr><th>method</th><th>path</th><th>summary</th><th>parameters</th></tr></table>
<script>
fetch("/docs/swagger.json").then(r => r.json()).then(spec => {
  const table = document.getElementById("routes");
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const row = table.insertRow();
      row.insertCell().textContent = method.toUpperCase();
      row.insertCell().innerHTML = "<code></code>";
      row.cells[1].firstChild.textContent = path;
      row.insertCell().textContent = op.summary;
      row.insertCell().textContent = op.parameters.map(p => p.name + " (" + p.in + ")").join(", ");
    }
  }
});
</script>
</body>
</html>
"#;
