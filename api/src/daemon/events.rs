//! The `/events` stream (§1.7): one line of JSON per event, `data: …\n\n`, to every connected
//! client, with a heartbeat so that a dead client is noticed (its write fails).
//!
//! Tribler's GUI reader (`event_request_manager.py`, `on_read_data`) is no general SSE parser: it
//! splits on `\n\n`, strips `data:` and `json.loads` every block, so an SSE comment (`:`) opens
//! its crash dialog. The heartbeat is therefore an event of its own topic, `keep_alive`, which the
//! GUI's notifier ignores (an unknown topic is logged once and dropped).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::{AsyncRead, Stream};
use serde_json::{json, Value};

use crate::rt::Rt;

/// How often an idle stream sends [`KEEP_ALIVE`].
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The heartbeat frame: one `data:` line of JSON, like every other event.
const KEEP_ALIVE: &[u8] = b"data: {\"topic\": \"keep_alive\", \"args\": [], \"kwargs\": {}}\n\n";

/// Events a slow client may have queued before it is dropped.
const CLIENT_QUEUE: usize = 1024;

type Frame = Arc<[u8]>;

#[derive(Default)]
struct Inner {
    clients: Vec<Sender<Frame>>,
    closed: bool,
    /// The first `tribler_exception` that no client was connected to receive (sent to the
    /// next client after `events_start`, as Tribler does).
    undelivered: Option<Frame>,
    /// A `report_config_error` that no client was connected to receive (the file is read
    /// before anyone can connect): sent to the next client.
    undelivered_config: Option<Frame>,
    /// Streams not yet dropped by the HTTP server.
    live: usize,
}

/// Fans events out to the connected `/events` clients.
pub struct EventBus {
    inner: Arc<Mutex<Inner>>,
    public_key: String,
    version: String,
    heartbeat: Duration,
    rt: Rt,
}

/// `data: {"topic": …, ["args": …,] "kwargs": …}\n\n`, keys in Tribler's order.
fn frame(topic: &str, args: Option<Vec<Value>>, kwargs: Value) -> Frame {
    let topic = Value::from(topic);
    let text = match args {
        Some(args) => {
            format!("data: {{\"topic\": {topic}, \"args\": {}, \"kwargs\": {kwargs}}}\n\n", Value::from(args))
        }
        None => format!("data: {{\"topic\": {topic}, \"kwargs\": {kwargs}}}\n\n"),
    };
    text.into_bytes().into()
}

impl EventBus {
    pub fn new(public_key: String, version: String, rt: Rt) -> EventBus {
        EventBus::with_heartbeat(public_key, version, HEARTBEAT, rt)
    }

    /// A bus whose idle streams send a heartbeat every `heartbeat` (timed on `rt`).
    pub fn with_heartbeat(public_key: String, version: String, heartbeat: Duration, rt: Rt) -> EventBus {
        EventBus { inner: Arc::default(), public_key, version, heartbeat, rt }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a frame to every client; returns whether any got it. Clients whose queue is full
    /// or whose stream is gone are dropped.
    fn broadcast(&self, f: Frame) -> bool {
        let mut inner = self.lock();
        let mut delivered = false;
        inner.clients.retain(|c| match c.try_send(f.clone()) {
            Ok(()) => {
                delivered = true;
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => false,
        });
        delivered
    }

    /// `{"topic": …, "args": […], "kwargs": {…}}`.
    pub fn publish(&self, topic: &str, args: Vec<Value>, kwargs: Value) {
        self.broadcast(frame(topic, Some(args), kwargs));
    }

    /// `tribler_shutdown_state` with a progress text.
    pub fn shutdown_state(&self, state: &str) {
        self.publish("tribler_shutdown_state", vec![Value::from(state)], json!({}));
    }

    /// `tribler_exception` for an unhandled error (no `args` key, and no `created_at`: the
    /// 7.13.1 release GUI rejects unknown keys).
    pub fn exception(&self, code: &str, message: &str) {
        self.report_exception(code, message, false);
    }

    /// `tribler_exception` with `should_stop: true` (Tribler's GUI then offers to quit).
    pub fn stopping_exception(&self, code: &str, message: &str) {
        self.report_exception(code, message, true);
    }

    fn report_exception(&self, code: &str, message: &str, should_stop: bool) {
        let error = json!({
            "type": code,
            "text": message,
            "event": {},
            "additional_information": {},
            "long_text": format!("{code}: {message}"),
            "context": "{}",
            "last_core_output": "",
            "should_stop": should_stop,
        });
        let f = frame("tribler_exception", None, json!({ "error": error }));
        if !self.broadcast(f.clone()) {
            let mut inner = self.lock();
            if inner.undelivered.is_none() {
                inner.undelivered = Some(f);
            }
        }
    }

    /// `report_config_error`: `triblerd.conf` was unusable and the defaults are in force.
    pub fn report_config_error(&self, text: &str) {
        let f = frame("report_config_error", Some(vec![Value::from(text)]), json!({}));
        if !self.broadcast(f.clone()) {
            self.lock().undelivered_config = Some(f);
        }
    }

    /// A new client's stream: `events_start` first. After [`EventBus::close`], the stream
    /// holds only `events_start` and ends.
    pub fn subscribe(&self) -> EventStream {
        let start = frame("events_start", None, json!({"public_key": self.public_key, "version": self.version}));
        let (tx, rx) = async_channel::bounded(CLIENT_QUEUE);
        let mut inner = self.lock();
        if let Some(e) = inner.undelivered.take() {
            let _ = tx.try_send(e);
        }
        if let Some(e) = inner.undelivered_config.take() {
            let _ = tx.try_send(e);
        }
        if !inner.closed {
            inner.clients.push(tx);
        }
        inner.live += 1;
        EventStream {
            pending: start,
            pos: 0,
            rx: Box::pin(rx),
            heartbeat: Mutex::new(Box::pin(self.rt.sleep(self.heartbeat))),
            every: self.heartbeat,
            rt: self.rt,
            bus: self.inner.clone(),
        }
    }

    /// Ends every stream (after what is queued) and refuses new clients.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.clients.clear();
    }

    /// Streams still held by connections.
    pub fn live_streams(&self) -> usize {
        self.lock().live
    }
}

/// A stream's wait for its next heartbeat.
type Heartbeat = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One client's stream, as an async reader of SSE bytes.
pub struct EventStream {
    pending: Frame,
    pos: usize,
    rx: Pin<Box<Receiver<Frame>>>,
    /// The next heartbeat. In a mutex only to make the stream `Sync` (as a response body must
    /// be): it is only reached through `&mut self`, never locked.
    heartbeat: Mutex<Heartbeat>,
    every: Duration,
    rt: Rt,
    bus: Arc<Mutex<Inner>>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let mut inner = self.bus.lock().unwrap_or_else(|e| e.into_inner());
        inner.live -= 1;
    }
}

impl AsyncRead for EventStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.pos < this.pending.len() {
                let n = buf.len().min(this.pending.len() - this.pos);
                buf[..n].copy_from_slice(&this.pending[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(n));
            }
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(f)) => {
                    this.pending = f;
                    this.pos = 0;
                    continue;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => {}
            }
            let heartbeat = this.heartbeat.get_mut().unwrap_or_else(|e| e.into_inner());
            match heartbeat.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    *heartbeat = Box::pin(this.rt.sleep(this.every));
                    this.pending = Arc::from(KEEP_ALIVE);
                    this.pos = 0;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::AsyncReadExt;

    #[test]
    fn start_then_events_then_end() {
        shoal_smol::block_on(async {
            let bus = EventBus::new("ab".repeat(32), "0.1.0".into(), Rt::of::<shoal_smol::Smol>());
            bus.exception("Boom", "nobody listening");
            let mut s = bus.subscribe();
            bus.shutdown_state("Saving configuration...");
            bus.close();
            assert!(bus.subscribe().pos == 0);
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            let frames: Vec<&str> = out.split_terminator("\n\n").collect();
            assert_eq!(frames.len(), 3, "{out}");
            assert!(
                frames[0].starts_with("data: {\"topic\": \"events_start\", \"kwargs\": {\"public_key\":\"abab"),
                "{out}"
            );
            assert!(frames[1].starts_with("data: {\"topic\": \"tribler_exception\", \"kwargs\": {\"error\""));
            assert!(frames[2].contains("tribler_shutdown_state"));
            drop(s);
            assert_eq!(bus.live_streams(), 0);
        });
    }

    #[test]
    fn idle_streams_get_heartbeats() {
        let rt = Rt::of::<shoal_smol::Smol>();
        shoal_smol::block_on(async {
            let bus = EventBus::with_heartbeat("00".repeat(32), "0.1.0".into(), Duration::from_millis(20), rt);
            let mut s = bus.subscribe();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            let read = async {
                while !got.ends_with(KEEP_ALIVE) {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
            };
            futures_lite::future::or(read, async {
                rt.sleep(Duration::from_secs(10)).await;
                panic!("no heartbeat");
            })
            .await;
            // Read as Tribler's GUI reads: every block is `data:` and one JSON object.
            let text = String::from_utf8(got).unwrap();
            for block in text.split("\n\n").filter(|b| !b.is_empty()) {
                let json = block.strip_prefix("data:").unwrap_or(block);
                let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{block:?}: {e}"));
                assert!(v["topic"].is_string(), "{block}");
            }
        });
    }
}
