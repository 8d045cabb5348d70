//! `/debug/*` (§7.1 of the reference): the daemon's own process, with real data.
//!
//! Open files, sockets and threads come from `/proc/self` at the time of the request
//! ([`debug_proc`](super::debug_proc)); CPU and memory history and the log from the task that
//! samples and keeps them ([`debug_monitor`](super::debug_monitor)). What Tribler answers with
//! a Python tool Shoal does not have (yappi's profiler) is refused with a 400 that says so;
//! `/debug/memory/dump` is not served, as in Tribler without `meliae` (its 404).
//!
//! Nothing here shows the API key: no command line, no environment, no settings, and no log
//! line holds it (Tribler's `/debug/threads` leaks it through Python frame locals).

use std::sync::Arc;

use serde_json::{json, Value};

use super::api::{ApiError, ApiRequest, ApiResponse, HandlerFuture};
use super::debug_proc;
use super::state::Daemon;

/// Lines of log returned when `max_lines` is not given (Tribler's `DEFAULT_MAX_LINES`).
const DEFAULT_MAX_LINES: i64 = 100;

/// A `/proc` read that failed: 500 with the handled-exception shape.
fn proc_error(e: procfs::ProcError) -> ApiError {
    ApiError::HandledException { code: "OSError".into(), message: e.to_string() }
}

/// `GET /debug/open_files`: `{"open_files": [{"path", "fd"}]}`, regular files only.
pub fn open_files(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let files = d.rt.unblock(debug_proc::open_files).await.map_err(proc_error)?;
        let files: Vec<Value> = files.into_iter().map(|f| json!({"path": f.path, "fd": f.fd})).collect();
        Ok(ApiResponse::ok(json!({ "open_files": files })))
    })
}

/// `GET /debug/open_sockets`: `{"open_sockets": [{"family", "status", "laddr", "raddr", "type"}]}`.
pub fn open_sockets(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let sockets = d.rt.unblock(debug_proc::open_sockets).await.map_err(proc_error)?;
        let sockets: Vec<Value> = sockets
            .into_iter()
            .map(
                |s| json!({"family": s.family, "status": s.status, "laddr": s.laddr, "raddr": s.raddr, "type": s.kind}),
            )
            .collect();
        Ok(ApiResponse::ok(json!({ "open_sockets": sockets })))
    })
}

/// `GET /debug/threads`: `{"threads": [{"thread_id", "thread_name", "frames"}]}`.
pub fn threads(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let threads = d.rt.unblock(debug_proc::threads).await.map_err(proc_error)?;
        let threads: Vec<Value> = threads
            .into_iter()
            .map(|t| json!({"thread_id": t.id, "thread_name": t.name, "frames": t.frames}))
            .collect();
        Ok(ApiResponse::ok(json!({ "threads": threads })))
    })
}

/// `GET /debug/cpu/history`: `{"cpu_history": [{"time", "cpu"}]}`, oldest first.
pub fn cpu_history(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let samples = d.monitor.history().await;
        let history: Vec<Value> = samples.iter().map(|s| json!({"time": s.time, "cpu": s.cpu})).collect();
        Ok(ApiResponse::ok(json!({ "cpu_history": history })))
    })
}

/// `GET /debug/memory/history`: `{"memory_history": [{"time", "mem"}]}`, oldest first.
pub fn memory_history(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let samples = d.monitor.history().await;
        let history: Vec<Value> = samples.iter().map(|s| json!({"time": s.time, "mem": s.mem})).collect();
        Ok(ApiResponse::ok(json!({ "memory_history": history })))
    })
}

/// `max_lines` as Python's `int()` reads it (surrounding blanks and a sign allowed); a number
/// too large for 64 bits means "everything".
fn parse_max_lines(text: &str) -> Option<i64> {
    use std::num::IntErrorKind;
    match text.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Some(i64::MAX),
        Err(e) if *e.kind() == IntErrorKind::NegOverflow => Some(i64::MIN),
        Err(_) => None,
    }
}

/// `GET /debug/log?process=core|gui&max_lines=N`: `{"content", "max_lines"}`, the last
/// `max(1, N)` lines of the daemon's log (100 without `max_lines`). `process=gui` asks for a
/// GUI's log, which this process has not got: Tribler's answer for a missing log file,
/// `{"content": "", "max_lines": 0}`.
pub fn log(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let max_lines = match req.query("max_lines") {
            None => DEFAULT_MAX_LINES,
            Some(text) => parse_max_lines(text)
                .ok_or_else(|| ApiError::bad_request("max_lines must be an integer (the number of lines)"))?,
        }
        .max(1);
        match req.query("process").unwrap_or("core") {
            "core" => {}
            "gui" => return Ok(ApiResponse::ok(json!({"content": "", "max_lines": 0}))),
            // Not echoed: whatever a client puts here (even the key) stays out of the answer.
            _ => return Err(ApiError::bad_request("process must be core or gui")),
        }
        let n = usize::try_from(max_lines).unwrap_or(usize::MAX);
        let content = d.monitor.log_tail(n).await;
        Ok(ApiResponse::ok(json!({"content": content, "max_lines": max_lines})))
    })
}

/// `GET /debug/profiler`: `{"state": "STOPPED"}`; no profiler ever runs in Shoal.
pub fn profiler_state(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::ok(json!({"state": "STOPPED"}))) })
}

/// Why `PUT`/`DELETE /debug/profiler` are refused.
fn no_profiler(method: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{method} /debug/profiler: Shoal has no built-in profiler (Tribler's is yappi, a Python profiler); \
         profile the shoal process from outside, for example with perf record -p <pid>"
    ))
}

/// `PUT /debug/profiler`: refused (400), there is no profiler to start.
pub fn profiler_start(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Err(no_profiler("PUT")) })
}

/// `DELETE /debug/profiler`: refused (400), there is no profiler to stop.
pub fn profiler_stop(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Err(no_profiler("DELETE")) })
}

/// `POST /debug/core_test_exception`: `{"success": true}` and, as in Tribler, a
/// `tribler_exception` event with `should_stop: true` (the GUI's error dialog offers to quit).
/// The daemon itself goes on.
pub fn core_test_exception(d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        tracing::info!("test exception requested (POST /debug/core_test_exception)");
        d.events.stopping_exception("TriblerCoreTestException", "Tribler Core Test Exception");
        Ok(ApiResponse::ok(json!({"success": true})))
    })
}

/// `GET /debug/circuits/slots` (release build): Tribler's answer without a tunnel community,
/// empty slot lists; Shoal builds no anonymity tunnels.
pub fn circuit_slots(_d: Arc<Daemon>, _req: ApiRequest) -> HandlerFuture {
    Box::pin(async move { Ok(ApiResponse::ok(json!({"slots": {"random": [], "competing": []}}))) })
}

/// Response schemas of `/debug/*`, for the Swagger description.
pub mod schema {
    use serde_json::{json, Value};

    fn obj(props: Value) -> Value {
        json!({"type": "object", "properties": props})
    }

    fn list_of(key: &str, item: Value) -> Value {
        obj(json!({ key: {"type": "array", "items": obj(item)} }))
    }

    pub fn open_files() -> Value {
        list_of("open_files", json!({"path": {"type": "string"}, "fd": {"type": "integer"}}))
    }

    pub fn open_sockets() -> Value {
        list_of(
            "open_sockets",
            json!({
                "family": {"type": "integer", "description": "2 (AF_INET) or 10 (AF_INET6)"},
                "status": {"type": "string", "description": "LISTEN, ESTABLISHED, … (NONE for UDP)"},
                "laddr": {"type": "string", "description": "ip:port, or - when unbound"},
                "raddr": {"type": "string", "description": "ip:port, or - when not connected"},
                "type": {"type": "integer", "description": "1 (SOCK_STREAM) or 2 (SOCK_DGRAM)"},
            }),
        )
    }

    pub fn threads() -> Value {
        list_of(
            "threads",
            json!({
                "thread_id": {"type": "integer", "description": "the kernel's thread id"},
                "thread_name": {"type": "string"},
                "frames": {"type": "array", "items": {"type": "string"},
                    "description": "the thread's state, CPU time, context switches and kernel wait, as /proc shows them"},
            }),
        )
    }

    pub fn cpu_history() -> Value {
        list_of(
            "cpu_history",
            json!({"time": {"type": "number"}, "cpu": {"type": "number", "description": "percent of one core"}}),
        )
    }

    pub fn memory_history() -> Value {
        list_of(
            "memory_history",
            json!({"time": {"type": "number"}, "mem": {"type": "integer", "description": "resident bytes"}}),
        )
    }

    pub fn log() -> Value {
        obj(json!({"content": {"type": "string"}, "max_lines": {"type": "integer"}}))
    }

    pub fn profiler_state() -> Value {
        obj(json!({"state": {"type": "string", "enum": ["STARTED", "STOPPED"]}}))
    }

    pub fn success() -> Value {
        obj(json!({"success": {"type": "boolean"}}))
    }

    pub fn circuit_slots() -> Value {
        obj(json!({"slots": obj(json!({"random": {"type": "array"}, "competing": {"type": "array"}}))}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_lines_reads_like_python_int() {
        assert_eq!(parse_max_lines(" 12 "), Some(12));
        assert_eq!(parse_max_lines("+5"), Some(5));
        assert_eq!(parse_max_lines("-3"), Some(-3));
        assert_eq!(parse_max_lines("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_max_lines("abc"), None);
        assert_eq!(parse_max_lines(""), None);
        assert_eq!(parse_max_lines("1.5"), None);
    }
}
