//! The daemon's periodic work: resume data of downloads that progressed, and the free-space
//! watch behind the `low_space` event.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::state::Daemon;

/// How often downloads that verified new pieces are checkpointed. A crash loses at most this
/// much verified progress (the data is checked or fetched again, never trusted blindly).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// How often free space is looked at.
const SPACE_EVERY: Duration = Duration::from_secs(10);

/// Below this many free bytes on a download's disk, `low_space` is sent (Tribler's threshold).
const LOW_SPACE: u64 = 100 * 1000 * 1000;

/// How often the DHT's routing table is saved (also at shutdown).
const DHT_SAVE_EVERY: Duration = Duration::from_secs(300);

/// Writes the DHT's routing table to `<state>/dht.dat` for the next start.
pub async fn save_dht(d: &Daemon) {
    if let Some(snapshot) = d.library.session().dht_snapshot().await {
        let path = d.state_dir.join("dht.dat");
        if let Err(e) = d.rt.unblock(move || super::fsutil::write_atomic(&path, &snapshot)).await {
            eprintln!("shoal daemon: cannot save the DHT routing table: {e}");
        }
    }
}

/// Runs until the task is dropped.
pub async fn run(d: Arc<Daemon>) {
    let threshold = std::env::var("SHOAL_LOW_SPACE_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(LOW_SPACE);
    let mut low: HashSet<PathBuf> = HashSet::new();
    let mut since_space = SPACE_EVERY;
    let mut since_dht = Duration::ZERO;
    loop {
        d.rt.sleep(CHECKPOINT_EVERY).await;
        d.library.checkpoint_changed().await;
        since_dht += CHECKPOINT_EVERY;
        if since_dht >= DHT_SAVE_EVERY {
            since_dht = Duration::ZERO;
            save_dht(&d).await;
        }
        since_space += CHECKPOINT_EVERY;
        if since_space >= SPACE_EVERY {
            since_space = Duration::ZERO;
            for dir in d.library.destinations().await {
                let probe = dir.clone();
                let Some(space) = d.rt.unblock(move || disk_space(&probe)).await else { continue };
                if space.free < threshold {
                    if low.insert(dir) {
                        let used = space.total.saturating_sub(space.free);
                        let percent = if space.total > 0 { used as f64 * 100.0 / space.total as f64 } else { 0.0 };
                        let time = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64());
                        d.events.publish(
                            "low_space",
                            vec![json!({"time": time, "total": space.total, "used": used, "free": space.free, "percent": percent})],
                            json!({}),
                        );
                    }
                } else {
                    low.remove(&dir);
                }
            }
        }
    }
}

/// Size and free bytes of a file system.
struct Space {
    total: u64,
    free: u64,
}

/// The file system holding `dir` (or its nearest existing ancestor).
fn disk_space(dir: &Path) -> Option<Space> {
    let mut p = dir;
    while !p.exists() {
        p = p.parent()?;
    }
    let s = rustix::fs::statvfs(p).ok()?;
    Some(Space { total: s.f_blocks.saturating_mul(s.f_frsize), free: s.f_bavail.saturating_mul(s.f_frsize) })
}
