//! Health checks in the daemon: `GET /metadata/torrents/{infohash}/health` (both spellings use
//! this path), the background checker, and what a result does: stored in the metadata store,
//! and sent on `/events` as `channel_entity_updated`, so Tribler's GUI updates the row.
//!
//! The checks themselves run in the engine ([`shoal_core::Engine::check_health`]): this module
//! only decides what to check, with which trackers, and what to do with the report. A check that
//! nobody answered stores nothing: the torrent keeps its last figures (0 and
//! `last_tracker_check` 0 if it was never checked).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use shoal_core::engine::MAX_CHECK_TIMEOUT;
use shoal_core::health::{HealthReport, Source};
use shoal_core::InfoHash;

use super::api::{ApiError, ApiRequest, ApiResponse, HandlerFuture};
use super::state::Daemon;
use super::store::entry::TorrentFacts;
use super::store::health::Health;

/// A check's timeout when the request names none (Tribler's `TORRENT_CHECK_TIMEOUT`).
pub const DEFAULT_TIMEOUT_SECS: u64 = 20;

/// Health younger than this is fresh: the background checker leaves it alone (Tribler's
/// `HEALTH_FRESHNESS_SECONDS`).
const FRESH_SECS: i64 = 4 * 3600;

/// How many stored torrents one background round checks, picked at random among the most
/// seeded and the longest unchecked stale ones (Tribler's `TORRENT_SELECTION_POOL_SIZE`).
const STORE_PICKS: usize = 2;

/// How many downloads one background round checks, the longest unchecked first.
const DOWNLOAD_PICKS: usize = 2;

/// A torrent the background checker tried is not tried again before this, answered or not
/// (Tribler's `MIN_TORRENT_CHECK_INTERVAL`): an unreachable tracker must not starve the others.
const RETRY_AFTER: Duration = Duration::from_secs(900);

/// `[torrent_checking] interval`: seconds between two rounds of the background checker.
pub const INTERVAL_KEY: (&str, &str) = ("torrent_checking", "interval");

/// The `{infohash}` segment: 40 hex digits, else 400 naming it.
fn infohash(req: &ApiRequest) -> Result<InfoHash, ApiError> {
    let raw = req.param("infohash").unwrap_or("");
    InfoHash::from_hex(raw)
        .map_err(|_| ApiError::bad_request(format!("Invalid infohash {raw:?}: 40 hexadecimal digits expected")))
}

/// The `timeout` query parameter, in seconds: Tribler's message for a non-integer, and ours
/// for one outside what a check can take.
fn timeout(req: &ApiRequest) -> Result<Duration, ApiError> {
    let Some(raw) = req.query("timeout") else { return Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)) };
    let n: i64 = raw.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Error processing timeout parameter: invalid literal for int() with base 10: '{raw}'"
        ))
    })?;
    let max = MAX_CHECK_TIMEOUT.as_secs();
    match u64::try_from(n) {
        Ok(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(ApiError::bad_request(format!(
            "Error processing timeout parameter: {n} is not between 1 and {max} seconds"
        ))),
    }
}

/// Whether `[torrent_checking] enabled` is on.
fn enabled(d: &Daemon) -> bool {
    let s = d.settings.lock().unwrap_or_else(|e| e.into_inner());
    s.get("torrent_checking", "enabled").as_bool().unwrap_or(true)
}

/// `[torrent_checking] interval` in force.
fn interval(d: &Daemon) -> Duration {
    let s = d.settings.lock().unwrap_or_else(|e| e.into_inner());
    Duration::from_secs(s.get(INTERVAL_KEY.0, INTERVAL_KEY.1).as_u64().unwrap_or(120).max(1))
}

/// `GET /metadata/torrents/{infohash}/health?timeout=`: starts a check and answers
/// `{"checking": true}` at once; the result follows on `/events`. With the checker off
/// (`[torrent_checking] enabled = false`), `{"checking": false}`, as Tribler without one.
pub fn torrent_health(d: Arc<Daemon>, req: ApiRequest) -> HandlerFuture {
    Box::pin(async move {
        let timeout = timeout(&req)?;
        let ih = infohash(&req)?;
        if !enabled(&d) {
            return Ok(ApiResponse::ok(json!({"checking": false})));
        }
        let rt = d.rt;
        rt.detach(async move {
            match check(&d, ih, timeout).await {
                Ok(report) => tracing::info!("health of {ih}: {}", summary(&report)),
                Err(e) => tracing::warn!("health check of {ih}: {e}"),
            }
        });
        Ok(ApiResponse::ok(json!({"checking": true})))
    })
}

/// Every tracker known for `ih`: its download's (every tier) and its store entries'.
async fn trackers(d: &Daemon, ih: InfoHash) -> Vec<String> {
    let mut urls: Vec<String> = d
        .library
        .get(&ih)
        .await
        .and_then(|dl| dl.meta)
        .map(|m| m.trackers.iter().flatten().cloned().collect())
        .unwrap_or_default();
    match d.store.trackers(ih.0).await {
        Ok(more) => urls.extend(more),
        Err(e) => eprintln!("shoal daemon: cannot read the trackers of {ih}: {e}"),
    }
    urls
}

/// Checks `ih` now with every tracker known for it (and the DHT), stores what came back, and
/// publishes the health in force afterwards. Returns what each source said.
pub async fn check(d: &Daemon, ih: InfoHash, timeout: Duration) -> Result<HealthReport, String> {
    let urls = trackers(d, ih).await;
    let report = d.library.session().check_health(ih, urls, timeout).await.map_err(|e| e.to_string());
    let health = match &report {
        Ok(r) => apply(d, r).await,
        Err(_) => d.store.health(ih.0).await.map_err(|e| e.to_string()),
    };
    // The GUI shows "checking" until it hears back, so it hears back in every case.
    publish(d, ih, health.as_ref().copied().unwrap_or_default());
    health?;
    report
}

/// One line on what each source of a check said.
fn summary(report: &HealthReport) -> String {
    if report.sources.is_empty() {
        return "no tracker known and no DHT to ask".into();
    }
    let said: Vec<String> = report
        .sources
        .iter()
        .map(|s| {
            let who = match &s.source {
                Source::Tracker(url) => url.as_str(),
                Source::Dht => "DHT",
            };
            match &s.result {
                Ok(f) => format!("{who}: {} seeders, {} leechers", f.seeders, f.leechers),
                Err(e) => format!("{who}: {e}"),
            }
        })
        .collect();
    said.join("; ")
}

/// Stores a report's figures if any source answered; returns the health in force.
async fn apply(d: &Daemon, report: &HealthReport) -> Result<Health, String> {
    let ih = report.info_hash.0;
    let stored = match report.figures {
        Some(f) => d.store.set_health(ih, f.seeders, f.leechers).await,
        None => d.store.health(ih).await,
    };
    stored.map_err(|e| e.to_string())
}

/// Sends a torrent's health on `/events`, exactly as Tribler's torrent checker notifies it.
fn publish(d: &Daemon, ih: InfoHash, h: Health) {
    let update: Value = json!({
        "infohash": ih.to_string(),
        "num_seeders": h.seeders,
        "num_leechers": h.leechers,
        "last_tracker_check": h.last_check,
        "health": "updated",
    });
    d.events.publish("channel_entity_updated", vec![update], json!({}));
}

/// The background checker: every `[torrent_checking] interval` seconds, a round checks a few
/// stale stored torrents (popular and long unchecked ones, as Tribler's checker picks them)
/// and the downloads checked longest ago. Runs until the task is dropped.
pub async fn run(d: Arc<Daemon>) {
    let mut tried: HashMap<InfoHash, Instant> = HashMap::new();
    let mut since_round = Duration::ZERO;
    // A one-second tick, so that a new interval takes effect within a second.
    const TICK: Duration = Duration::from_secs(1);
    loop {
        d.rt.sleep(TICK).await;
        since_round += TICK;
        if since_round < interval(&d) || !enabled(&d) {
            continue;
        }
        since_round = Duration::ZERO;
        tried.retain(|_, at| at.elapsed() < RETRY_AFTER);
        let picks = pick(&d, &tried).await;
        // Each check holds a sender until it ends; the channel closes when all have.
        let (running, ended) = async_channel::bounded::<()>(1);
        let checks: Vec<_> = picks
            .into_iter()
            .map(|ih| {
                tried.insert(ih, Instant::now());
                let held = (d.clone(), running.clone());
                d.rt.spawn(async move {
                    let (d, _running) = held;
                    match check(&d, ih, Duration::from_secs(DEFAULT_TIMEOUT_SECS)).await {
                        Ok(report) => tracing::debug!("background health of {ih}: {}", summary(&report)),
                        Err(e) => tracing::warn!("background health check of {ih}: {e}"),
                    }
                })
            })
            .collect();
        drop(running);
        // A round ends when its checks do: never more running than one round's picks.
        let _ = ended.recv().await;
        drop(checks);
    }
}

/// What one background round checks: downloads not tried lately (each gets a store entry, so
/// its health has a row to show on), then stale stored torrents.
async fn pick(d: &Daemon, tried: &HashMap<InfoHash, Instant>) -> Vec<InfoHash> {
    let mut picks = Vec::new();
    for snap in d.library.snapshots(|ih| !tried.contains_key(ih), false).await {
        if picks.len() >= DOWNLOAD_PICKS {
            break;
        }
        if let Some(meta) = &snap.download.meta {
            d.store.record(TorrentFacts::of(meta));
            picks.push(snap.download.info_hash);
        }
    }
    // A larger pool than needed, so that torrents tried lately can be passed over.
    let pool = STORE_PICKS + tried.len().min(200);
    match d.store.to_check(FRESH_SECS, pool).await {
        Ok(candidates) => {
            let mut fresh: Vec<InfoHash> = candidates
                .into_iter()
                .map(InfoHash)
                .filter(|ih| !tried.contains_key(ih) && !picks.contains(ih))
                .collect();
            fresh.shuffle(&mut rand::rngs::StdRng::from_os_rng());
            picks.extend(fresh.into_iter().take(STORE_PICKS));
        }
        Err(e) => eprintln!("shoal daemon: background health checker: {e}"),
    }
    picks
}

/// The response schema, for the Swagger description.
pub fn schema() -> Value {
    json!({"type": "object", "properties": {"checking": {"type": "boolean"}}})
}
