//! The metadata store: every torrent the user has met (downloads added, torrents looked at
//! with `/torrentinfo`), as signed Tribler metadata entries in SQLite, with full-text search.
//!
//! `<state>/sqlite/metadata.db` (Tribler's layout), WAL journal, versioned schema
//! ([`schema`]). One owner: a dedicated thread holds the only connection and runs the jobs sent
//! to it in order, so writes never race, a search sent after an add sees it, and no SQLite call
//! ever runs on the async executor. A file that is not a database (or is damaged) is moved
//! aside with one log line and a fresh store starts in its place.

pub mod category;
pub mod db;
pub mod entry;
pub mod flavor;
pub mod health;
pub mod key;
pub mod knowledge;
pub mod query;
pub mod rules;
pub mod schema;
pub mod statement;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Mutex;

use async_channel::Sender;

use db::{Db, OpenError, Page, Signer};
use entry::TorrentFacts;
use query::SearchParams;

/// The most jobs run in one transaction.
const MAX_BATCH: usize = 5_000;
/// Entries the rules catch up on per job (after an upgrade of the rules or the schema).
const RULES_BATCH: i64 = 500;

/// A job for the store's thread.
type Job = Box<dyn FnOnce(&mut Db) + Send>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the metadata store is closed")]
    Closed,
    #[error("metadata store: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The handle to the store's thread; cheap to share.
pub struct Store {
    jobs: Sender<Job>,
    /// Signs new entries on the caller's thread, so the store's thread only writes them.
    signer: Mutex<Signer>,
}

fn now() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn now_secs() -> i64 {
    i64::try_from(now().as_secs()).unwrap_or(i64::MAX)
}

/// Where the store lives in a state directory.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("sqlite").join("metadata.db")
}

/// Moves a damaged database (and its WAL and shared-memory files) aside.
fn move_aside(path: &Path) -> Result<PathBuf, String> {
    let stamp = now().as_secs();
    let aside = path.with_file_name(format!("metadata.db.corrupt-{stamp}"));
    std::fs::rename(path, &aside).map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, PathBuf::from(format!("{}{suffix}", aside.display())));
        }
    }
    Ok(aside)
}

/// After a failed job: if `e` says the store is damaged (a disk fault in pages that opening
/// did not read), the store is moved aside with one log line and a fresh one takes its place,
/// as at start, so searches do not fail from then on. Returns whether that happened.
fn replace_damaged(db: &mut Db, e: &rusqlite::Error) -> bool {
    if !db::is_corrupt(e) {
        return false;
    }
    let (path, key) = (db.path().to_path_buf(), db.key().clone());
    // The damaged connection closes before its files move: closing deletes the WAL by name,
    // which would otherwise be the fresh store's.
    match Db::open(Path::new(":memory:"), key.clone()) {
        Ok(placeholder) => drop(std::mem::replace(db, placeholder)),
        Err(e) => {
            eprintln!("shoal daemon: metadata store: {e}");
            return false;
        }
    }
    let fresh = move_aside(&path).and_then(|aside| {
        eprintln!(
            "shoal daemon: the metadata store {} is damaged ({e}); moved it to {} and starting a fresh one",
            path.display(),
            aside.display()
        );
        Db::open(&path, key).map_err(|e| format!("cannot open {}: {e}", path.display()))
    });
    match fresh {
        Ok(fresh) => {
            *db = fresh;
            true
        }
        // The in-memory store serves until the next start.
        Err(e) => {
            eprintln!("shoal daemon: metadata store: {e}");
            false
        }
    }
}

impl Store {
    /// Opens the store of `state_dir` (creating it, and the user's key, on first start) and
    /// starts its thread.
    pub fn open(state_dir: &Path) -> Result<Store, String> {
        let signing_key = key::load_or_create(state_dir)?;
        let path = db_path(state_dir);
        let dir = path.parent().unwrap_or(state_dir);
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let db = match Db::open(&path, signing_key.clone()) {
            Ok(db) => db,
            Err(OpenError::Corrupt(e)) => {
                let aside = move_aside(&path)?;
                eprintln!(
                    "shoal daemon: the metadata store {} is damaged ({e}); moved it to {} and starting a fresh one",
                    path.display(),
                    aside.display()
                );
                Db::open(&path, signing_key.clone()).map_err(|e| format!("cannot open {}: {e}", path.display()))?
            }
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let signer = Mutex::new(Signer::new(signing_key));
        let (jobs, rx) = async_channel::unbounded::<Job>();
        std::thread::Builder::new()
            .name("metadata-store".into())
            .spawn(move || {
                let mut db = db;
                while let Ok(job) = rx.recv_blocking() {
                    // The jobs that queued up meanwhile run in the same transaction: a burst of
                    // adds costs one commit, not one each.
                    if let Err(e) = db.begin() {
                        eprintln!("shoal daemon: metadata store: cannot begin a transaction: {e}");
                    }
                    job(&mut db);
                    for _ in 0..MAX_BATCH {
                        let Ok(job) = rx.try_recv() else { break };
                        job(&mut db);
                    }
                    if let Err(e) = db.commit() {
                        eprintln!("shoal daemon: metadata store: cannot commit: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the metadata store's thread: {e}"))?;
        let store = Store { jobs, signer };
        store.apply_rules_backlog(0);
        Ok(store)
    }

    /// Runs `f` on the store's thread and waits for its answer. If the store turns out to be
    /// damaged, it is replaced by a fresh one and `f` runs again there.
    async fn call<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Db) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = async_channel::bounded(1);
        let job: Job = Box::new(move |db| {
            let mut answer = f(db);
            if let Err(e) = &answer {
                if replace_damaged(db, e) {
                    answer = f(db);
                }
            }
            let _ = tx.send_blocking(answer);
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        Ok(rx.recv().await.map_err(|_| StoreError::Closed)??)
    }

    /// Records the user's entry for a torrent (nothing if there is one). Does not wait: jobs
    /// run in order, so anything asked of the store afterwards sees the entry, and
    /// [`Store::committed`] tells when it is on disk.
    pub fn record(&self, facts: TorrentFacts) {
        let now_ms = u64::try_from(now().as_millis()).unwrap_or(u64::MAX);
        // Signing is a quarter of an add's cost: done here, it overlaps the writes of the
        // entries before. A poisoned lock only means another caller panicked mid-signature.
        let signed = self.signer.lock().unwrap_or_else(|e| e.into_inner()).sign(&facts, now_ms);
        let job: Job = Box::new(move |db| {
            // A new entry gets our rules' statements at once, as Tribler's rules processor
            // handles each new entry.
            let recorded = db.insert(&facts, signed, now_secs());
            if let Err(e) = recorded {
                eprintln!(
                    "shoal daemon: cannot store the entry of {}: {e}",
                    data_encoding::HEXLOWER.encode(&facts.infohash)
                );
                replace_damaged(db, &e);
            }
        });
        // The thread ends only with the process; a send error cannot happen before.
        let _ = self.jobs.try_send(job);
    }

    /// Runs the rules over the entries an older version of them (or none) processed, a batch
    /// per job, so that searches keep being served between batches.
    fn apply_rules_backlog(&self, after: i64) {
        rules_backlog(self.jobs.clone(), after);
    }

    /// Replaces the user's statements about a torrent (hex info-hash), signing each change.
    pub async fn set_statements(
        &self,
        infohash_hex: String,
        statements: Vec<(i64, String)>,
    ) -> Result<knowledge::Changes, StoreError> {
        self.call(move |db| db.set_statements(&infohash_hex, &statements, now_secs())).await
    }

    /// Tag suggestions for a torrent (hex info-hash).
    pub async fn tag_suggestions(&self, infohash_hex: String) -> Result<Vec<String>, StoreError> {
        self.call(move |db| db.tag_suggestions(&infohash_hex)).await
    }

    /// Waits until everything sent to the store before is committed to disk: a `kill -9`
    /// afterwards loses none of it.
    pub async fn committed(&self) -> Result<(), StoreError> {
        self.call(|db| {
            db.commit()?;
            db.begin()
        })
        .await
    }

    /// A page of a local search.
    pub async fn search(&self, p: SearchParams) -> Result<Page, StoreError> {
        self.call(move |db| db.search(&p, None)).await
    }

    /// A page of the popular torrents: the healthiest checked in the last day.
    pub async fn popular(&self, p: SearchParams) -> Result<Page, StoreError> {
        let now = i64::try_from(now().as_secs()).unwrap_or(i64::MAX);
        self.call(move |db| db.search(&p, Some(now))).await
    }

    /// Completions of a typed prefix.
    pub async fn completions(&self, text: String) -> Result<Vec<String>, StoreError> {
        self.call(move |db| db.completions(&text)).await
    }

    /// `(db_size, num_torrents)`.
    pub async fn stats(&self) -> Result<(i64, i64), StoreError> {
        self.call(|db| db.stats()).await
    }
}

/// Queues one batch of the rules' catch-up after row `after`; the batch queues the next.
fn rules_backlog(jobs: Sender<Job>, after: i64) {
    let next = jobs.clone();
    let job: Job = Box::new(move |db| match db.apply_rules_backlog(after, RULES_BATCH, now_secs()) {
        Ok(Some(last)) => rules_backlog(next, last),
        Ok(None) => {}
        Err(e) => {
            // A damaged store is replaced by a fresh one, which has nothing to catch up on.
            if !replace_damaged(db, &e) {
                eprintln!("shoal daemon: metadata store: cannot apply the tag rules: {e}");
            }
        }
    });
    let _ = jobs.try_send(job);
}
