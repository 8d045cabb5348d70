//! Endpoint handlers: our request in, our response out (§3 of the reference, `/events`, docs).

use std::sync::Arc;

use serde_json::{json, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, Body, HandlerFuture};
use super::settings;
use super::state::Daemon;

/// `GET /settings`: `{"settings": {…}, "ports": […]}`.
pub fn get_settings(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::ok(json!({"settings": d.settings_tree(), "ports": d.ports()}))) })
}

/// `POST /settings`: deep-merges a partial tree. Every value is validated first; an invalid
/// one, a change of `api.*` or of a setting without effect is refused with 400 and nothing is
/// written (Tribler would write it).
pub fn post_settings(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let patch = req.json()?;
        let in_force = d.settings_tree();
        let (down, up) = {
            let mut settings = d.settings.lock().unwrap_or_else(|e| e.into_inner());
            let next = settings.merged(&patch, &in_force).map_err(ApiError::bad_request)?;
            next.save().map_err(|e| ApiError::Handled(500, e))?;
            let limits = settings::rate_limits(&next);
            *settings = next;
            limits
        };
        // Rate limits apply at once, as in Tribler.
        d.library.session().set_rate_limits(down, up).await;
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

/// `/events` streams at once: each holds a REST connection for as long as it lives, and the
/// other requests need some.
const MAX_EVENT_STREAMS: usize = 64;

/// `GET /events`: the event stream, `events_start` first (503 over [`MAX_EVENT_STREAMS`]).
pub fn events(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        if d.events.live_streams() >= MAX_EVENT_STREAMS {
            return Err(ApiError::Handled(503, format!("too many event streams (at most {MAX_EVENT_STREAMS})")));
        }
        Ok(ApiResponse {
            status: 200,
            content_type: "text/event-stream",
            headers: vec![("cache-control", "no-cache".into()), ("connection", "keep-alive".into())],
            body: Body::Stream(Box::new(d.events.subscribe())),
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
            "text/event-stream: `data: {\"topic\": …, \"args\": […], \"kwargs\": {…}}` frames; a `keep_alive` topic as heartbeat"})
    }

    pub fn html() -> Value {
        json!({"type": "string"})
    }

    fn obj(props: Value) -> Value {
        json!({"type": "object", "properties": props})
    }

    fn download() -> Value {
        let num = json!({"type": "number"});
        let int = json!({"type": "integer"});
        let s = json!({"type": "string"});
        let b = json!({"type": "boolean"});
        obj(json!({
            "name": s, "progress": num, "infohash": s, "speed_down": int, "speed_up": int,
            "status": {"type": "string", "enum": ["ALLOCATING_DISKSPACE", "WAITING_FOR_HASHCHECK", "HASHCHECKING",
                "DOWNLOADING", "SEEDING", "STOPPED", "STOPPED_ON_ERROR", "METADATA", "CIRCUITS", "EXIT_NODES"]},
            "status_code": int, "size": int, "eta": num, "num_peers": int, "num_seeds": int,
            "num_connected_peers": int, "num_connected_seeds": int,
            "all_time_upload": int, "all_time_download": int, "all_time_ratio": num,
            "total_up": int, "total_down": int, "ratio": num,
            "trackers": {"type": "array", "items": obj(json!({"url": s, "peers": int, "status": s}))},
            "hops": int, "anon_download": b, "safe_seeding": b, "max_upload_speed": int, "max_download_speed": int,
            "destination": s, "availability": num, "total_pieces": int,
            "vod_mode": {"type": "boolean", "x-nullable": true}, "error": s, "time_added": int, "channel_download": b,
            "peers": {"type": "array", "items": peer()},
            "pieces": {"type": "string", "description": "base64 bitfield of verified pieces"},
            "files": {"type": "array", "items": file()},
        }))
    }

    fn peer() -> Value {
        let mut props = serde_json::Map::new();
        for (names, ty) in [
            ("id extended_version ip direction", "string"),
            ("port uprate downrate utotal dtotal speed connection_type", "integer"),
            (
                "optimistic uinterested uchoked uhasqueries uflushed dinterested dchoked snubbed seed upload_only",
                "boolean",
            ),
            ("completed", "number"),
        ] {
            for n in names.split(' ') {
                props.insert(n.into(), json!({ "type": ty }));
            }
        }
        obj(Value::Object(props))
    }

    fn file() -> Value {
        obj(json!({"index": {"type": "integer"}, "name": {"type": "string"}, "size": {"type": "integer"},
            "included": {"type": "boolean"}, "progress": {"type": "number"}}))
    }

    pub fn downloads() -> Value {
        obj(json!({
            "downloads": {"type": "array", "items": download()},
            "checkpoints": obj(json!({"total": {"type": "integer"}, "loaded": {"type": "integer"}, "all_loaded": {"type": "boolean"}})),
        }))
    }

    pub fn started() -> Value {
        obj(json!({"started": {"type": "boolean"}, "infohash": {"type": "string"}}))
    }

    pub fn modified_ih() -> Value {
        obj(json!({"modified": {"type": "boolean"}, "infohash": {"type": "string"}}))
    }

    pub fn removed() -> Value {
        obj(json!({"removed": {"type": "boolean"}, "infohash": {"type": "string"}}))
    }

    pub fn files() -> Value {
        obj(
            json!({"infohash": {"type": "string"}, "query": {"type": "string"}, "files": {"type": "array", "items": file()}}),
        )
    }

    pub fn path() -> Value {
        obj(json!({"path": {"type": "string"}}))
    }

    pub fn empty() -> Value {
        obj(json!({}))
    }

    pub fn binary() -> Value {
        json!({"type": "string", "format": "binary"})
    }

    pub fn torrentinfo() -> Value {
        obj(json!({
            "metainfo": {"type": "string", "description": "hex of the UTF-8 JSON form of the torrent"},
            "download_exists": {"type": "boolean", "x-nullable": true, "description": "true, or null when not added"},
        }))
    }

    pub fn createtorrent() -> Value {
        obj(json!({"torrent": {"type": "string", "description": "base64 of the .torrent"}}))
    }

    pub fn lt_settings() -> Value {
        obj(json!({"hop": {"type": "integer"}, "settings": {"type": "object"}}))
    }

    pub fn lt_session() -> Value {
        obj(json!({"hop": {"type": "integer"}, "session": {"type": "object"}}))
    }

    pub fn stats_tribler() -> Value {
        obj(
            json!({"tribler_statistics": obj(json!({"db_size": {"type": "integer"}, "num_torrents": {"type": "integer"}, "num_channels": {"type": "integer"}}))}),
        )
    }

    pub fn stats_ipv8() -> Value {
        obj(
            json!({"ipv8_statistics": obj(json!({"total_up": {"type": "integer"}, "total_down": {"type": "integer"}}))}),
        )
    }

    pub fn swagger() -> Value {
        json!({"type": "object", "description": "this Swagger 2.0 document"})
    }
}
