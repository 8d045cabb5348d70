//! The store's side of health checks: the figures of an info-hash, the trackers known for it,
//! and which torrents the background checker looks at next (Tribler's choice: the popular
//! ones and the ones checked longest ago, among those not checked for a while).

use rusqlite::{params, OptionalExtension};

use super::db::Db;
use super::{now, Store, StoreError};

/// The health of one torrent as stored: `(seeders, leechers, last_check)`, zeros when never
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Seeders at the last check.
    pub seeders: i64,
    /// Leechers at the last check.
    pub leechers: i64,
    /// When it was checked (unix s), 0 for never.
    pub last_check: i64,
}

impl Db {
    /// The stored health of `infohash`.
    pub fn health(&self, infohash: &[u8; 20]) -> rusqlite::Result<Health> {
        let found = self
            .conn()
            .prepare_cached("SELECT seeders, leechers, last_check FROM health WHERE infohash = ?1")?
            .query_row(params![&infohash[..]], |r| {
                Ok(Health { seeders: r.get(0)?, leechers: r.get(1)?, last_check: r.get(2)? })
            })
            .optional()?;
        Ok(found.unwrap_or_default())
    }

    /// The tracker URLs the entries of `infohash` carry.
    pub fn trackers(&self, infohash: &[u8; 20]) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT DISTINCT tracker_info FROM torrent WHERE infohash = ?1 AND tracker_info != ''")?;
        let rows = stmt.query_map(params![&infohash[..]], |r| r.get(0))?;
        rows.collect()
    }

    /// Candidates for the background checker: torrents with a tracker not checked since
    /// `stale_before`, the `pool` most seeded and the `pool` longest unchecked.
    pub fn to_check(&self, stale_before: i64, pool: usize) -> rusqlite::Result<Vec<[u8; 20]>> {
        let pool = i64::try_from(pool).unwrap_or(i64::MAX);
        let mut picked: Vec<[u8; 20]> = Vec::new();
        let orders = [
            "coalesce(h.seeders, 0) DESC, coalesce(h.last_check, 0)",
            "coalesce(h.last_check, 0), coalesce(h.seeders, 0) DESC",
        ];
        for order in orders {
            let sql = format!(
                "SELECT t.infohash FROM torrent t LEFT JOIN health h ON h.infohash = t.infohash \
                 WHERE t.tracker_info != '' AND coalesce(h.last_check, 0) < ?1 \
                 GROUP BY t.infohash ORDER BY {order} LIMIT ?2"
            );
            let mut stmt = self.conn().prepare_cached(&sql)?;
            let rows = stmt.query_map(params![stale_before, pool], |r| r.get::<_, Vec<u8>>(0))?;
            for ih in rows {
                let Ok(ih) = <[u8; 20]>::try_from(ih?.as_slice()) else { continue };
                if !picked.contains(&ih) {
                    picked.push(ih);
                }
            }
        }
        Ok(picked)
    }
}

impl Store {
    /// The stored health of `infohash`.
    pub async fn health(&self, infohash: [u8; 20]) -> Result<Health, StoreError> {
        self.call(move |db| db.health(&infohash)).await
    }

    /// Stores a check's figures, checked now, and returns them as stored.
    pub async fn set_health(&self, infohash: [u8; 20], seeders: u32, leechers: u32) -> Result<Health, StoreError> {
        let checked = i64::try_from(now().as_secs()).unwrap_or(i64::MAX);
        let h = Health { seeders: seeders.into(), leechers: leechers.into(), last_check: checked };
        self.call(move |db| db.set_health(&infohash, h.seeders, h.leechers, h.last_check).map(|()| h)).await
    }

    /// The tracker URLs the entries of `infohash` carry.
    pub async fn trackers(&self, infohash: [u8; 20]) -> Result<Vec<String>, StoreError> {
        self.call(move |db| db.trackers(&infohash)).await
    }

    /// Candidates for the background checker ([`Db::to_check`]).
    pub async fn to_check(&self, fresh_secs: i64, pool: usize) -> Result<Vec<[u8; 20]>, StoreError> {
        let stale_before = i64::try_from(now().as_secs()).unwrap_or(i64::MAX).saturating_sub(fresh_secs);
        self.call(move |db| db.to_check(stale_before, pool)).await
    }
}
