//! Resume data on disk: `<state>/dlcheckpoints/<infohash>.state` (JSON) and, written once,
//! `<infohash>.torrent` (the torrent file as added).
//!
//! Every write is atomic (temp file, fsync, rename, fsync of the directory), so a `kill -9` at
//! any moment leaves either the previous or the next checkpoint. The `have` bitfield is taken
//! only after the torrent's written data was synced, so it never claims a piece that a crash
//! could lose.
//!
//! The library's writes all go through one [`Writer`], in the order the library issues them:
//! a checkpoint issued before a download's removal can never land after it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use shoal_core::{Bitfield, InfoHash, Metainfo};

use crate::daemon::fsutil;
use crate::rt::{Rt, Task};

/// Format version written in every checkpoint.
const VERSION: u32 = 1;

/// What is kept about one download between runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResumeData {
    /// Format version.
    pub version: u32,
    /// Hex info-hash (also the file name).
    pub infohash: String,
    /// Absolute directory the files go under.
    pub destination: PathBuf,
    /// Wanted file indexes; `None` means all.
    pub selected_files: Option<Vec<usize>>,
    /// Anonymity hops asked for (only 0 is served).
    pub hops: u32,
    /// Whether to seed only anonymously.
    pub safe_seeding: bool,
    /// Stopped by the user (stays stopped after a restart).
    pub user_stopped: bool,
    /// Unix seconds when first added.
    pub time_added: u64,
    /// Payload bytes uploaded over all sessions up to this checkpoint.
    pub all_time_upload: u64,
    /// Payload bytes downloaded over all sessions up to this checkpoint.
    pub all_time_download: u64,
    /// Base64 of the verified-pieces bitfield; `None` when unknown (checked again at start).
    pub have: Option<String>,
    /// Every wanted piece was verified (so a restart does not announce completion again).
    pub completed: bool,
    /// Streaming mode (`null` until streaming is used, as in Tribler).
    pub vod_mode: Option<bool>,
    /// The file being streamed in VOD mode.
    pub vod_file: Option<usize>,
    /// The magnet link it was added from, while its metadata is not known yet.
    #[serde(default)]
    pub magnet: Option<String>,
}

impl ResumeData {
    /// Fresh resume data for a download added now.
    pub fn new(info_hash: &InfoHash, destination: PathBuf, time_added: u64) -> ResumeData {
        ResumeData {
            version: VERSION,
            infohash: info_hash.to_string(),
            destination,
            selected_files: None,
            hops: 0,
            safe_seeding: false,
            user_stopped: false,
            time_added,
            all_time_upload: 0,
            all_time_download: 0,
            have: None,
            completed: false,
            vod_mode: None,
            vod_file: None,
            magnet: None,
        }
    }

    /// Stores a verified-pieces bitfield.
    pub fn set_have(&mut self, have: Option<&Bitfield>) {
        self.have = have.map(|b| BASE64.encode(b.as_bytes()));
    }

    /// Credits `all_time_download` with the pieces that the check after a crash found
    /// verified beyond this checkpoint's `saved` ones, `checked` pieces being valid in all.
    /// The download wrote them after its last checkpoint, so their bytes were downloaded,
    /// though the counters that said so died with the process. Counted as a lower bound (the
    /// short last piece is assumed among them unless it was saved). Returns the bytes credited.
    pub fn credit_found_after_crash(&mut self, saved: &Bitfield, checked: u32, meta: &Metainfo) -> u64 {
        let found = u64::from(checked.saturating_sub(saved.count_ones()));
        if found == 0 {
            return 0;
        }
        let piece_length = meta.info.piece_length as u64;
        let pieces = meta.info.pieces.len() as u32;
        let last_len = meta.info.total_length - piece_length * u64::from(pieces.saturating_sub(1));
        let last_saved = pieces > 0 && saved.get(pieces - 1);
        let bytes = found * piece_length - if last_saved { 0 } else { piece_length - last_len };
        self.all_time_download += bytes;
        bytes
    }

    /// The verified-pieces bitfield, if present and the right size for `pieces`.
    pub fn have(&self, pieces: u32) -> Option<Bitfield> {
        let bytes = BASE64.decode(self.have.as_ref()?.as_bytes()).ok()?;
        Bitfield::from_bytes(&bytes, pieces)
    }
}

/// The checkpoint directory of a state directory.
#[derive(Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

/// One saved download as found at start-up: with its torrent, or (a magnet still fetching
/// its metadata) without.
pub struct Saved {
    pub resume: ResumeData,
    pub torrent: Option<(Vec<u8>, Metainfo)>,
}

impl Checkpoints {
    /// `<state>/dlcheckpoints`, created if missing.
    pub fn open(state_dir: &Path) -> Result<Checkpoints, String> {
        let dir = state_dir.join("dlcheckpoints");
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Checkpoints { dir })
    }

    fn state_path(&self, hex: &str) -> PathBuf {
        self.dir.join(format!("{hex}.state"))
    }

    fn torrent_path(&self, hex: &str) -> PathBuf {
        self.dir.join(format!("{hex}.torrent"))
    }

    /// Writes the torrent file of a new download (before its first state).
    pub fn save_torrent(&self, info_hash: &InfoHash, bytes: &[u8]) -> std::io::Result<()> {
        fsutil::write_atomic(&self.torrent_path(&info_hash.to_string()), bytes)
    }

    /// Writes a download's state atomically.
    pub fn save(&self, resume: &ResumeData) -> std::io::Result<()> {
        // One writer (see [`Writer`]): no two writes of a file ever share its temporary file.
        let data = serde_json::to_vec_pretty(resume).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.state_path(&resume.infohash), &data)
    }

    /// Forgets a download.
    pub fn remove(&self, info_hash: &InfoHash) {
        let hex = info_hash.to_string();
        let _ = std::fs::remove_file(self.state_path(&hex));
        let _ = std::fs::remove_file(self.torrent_path(&hex));
    }

    /// Every saved download, oldest first; unreadable entries are reported and skipped.
    pub fn load_all(&self) -> (Vec<Saved>, Vec<String>) {
        let mut saved = Vec::new();
        let mut warnings = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => return (saved, vec![format!("cannot list {}: {e}", self.dir.display())]),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("state") {
                continue;
            }
            match self.load_one(&path) {
                Ok(s) => saved.push(s),
                Err(e) => warnings.push(format!("skipping checkpoint {}: {e}", path.display())),
            }
        }
        saved.sort_by(|a, b| (a.resume.time_added, &a.resume.infohash).cmp(&(b.resume.time_added, &b.resume.infohash)));
        (saved, warnings)
    }

    fn load_one(&self, path: &Path) -> Result<Saved, String> {
        let text = std::fs::read(path).map_err(|e| e.to_string())?;
        let resume: ResumeData = serde_json::from_slice(&text).map_err(|e| format!("malformed: {e}"))?;
        if resume.version != VERSION {
            return Err(format!("unknown format version {}", resume.version));
        }
        if !resume.destination.is_absolute() {
            return Err("the destination is not an absolute path".into());
        }
        let torrent_path = self.torrent_path(&resume.infohash);
        let torrent = match std::fs::read(&torrent_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && resume.magnet.is_some() => {
                return Ok(Saved { resume, torrent: None })
            }
            Err(e) => return Err(format!("{}: {e}", torrent_path.display())),
        };
        let metainfo = Metainfo::from_bytes(&torrent).map_err(|e| format!("{}: {e}", torrent_path.display()))?;
        if metainfo.info_hash.to_string() != resume.infohash {
            return Err("the torrent file does not match the info-hash".into());
        }
        Ok(Saved { resume, torrent: Some((torrent, metainfo)) })
    }
}

/// One write to the checkpoint directory; it reports its own outcome.
type Job = Box<dyn FnOnce(&Checkpoints) + Send>;

/// The checkpoint directory's only writer: jobs run on the blocking pool one after another,
/// in the order they were given.
pub struct Writer {
    jobs: async_channel::Sender<Job>,
    /// The task that runs them; they stop with it.
    _task: Task,
}

impl Writer {
    /// A writer of `checkpoints` on `rt`.
    pub fn start(checkpoints: Checkpoints, rt: Rt) -> Writer {
        let (jobs, queue) = async_channel::unbounded::<Job>();
        let checkpoints = Arc::new(checkpoints);
        let task = rt.spawn(async move {
            while let Ok(job) = queue.recv().await {
                let checkpoints = checkpoints.clone();
                rt.unblock(move || job(&checkpoints)).await;
            }
        });
        Writer { jobs, _task: task }
    }

    /// Queues `job` behind every write queued before.
    pub fn run(&self, job: impl FnOnce(&Checkpoints) + Send + 'static) {
        let _ = self.jobs.try_send(Box::new(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_found_after_a_crash_are_credited_as_downloaded() {
        // Three pieces of 16 KiB and a last one of 100 bytes.
        let mut b = shoal_core::create::TorrentBuilder::new("f".into());
        b.add_file(vec!["f".into()], 3 * 16384 + 100);
        b.set_piece_length(16384);
        let meta = Metainfo::from_bytes(&b.build(vec![[0; 20]; 4]).unwrap()).unwrap();
        let mut r = ResumeData::new(&meta.info_hash, "/tmp/x".into(), 1);
        r.all_time_download = 1000;
        let mut saved = Bitfield::new(4);
        saved.set(0, true);
        // Two more pieces valid: perhaps the 100-byte one, so at least 16384 + 100 bytes.
        assert_eq!(r.credit_found_after_crash(&saved, 3, &meta), 16384 + 100);
        assert_eq!(r.all_time_download, 1000 + 16384 + 100);
        // The last piece saved already: the others are whole.
        saved.set(3, true);
        assert_eq!(r.credit_found_after_crash(&saved, 4, &meta), 2 * 16384);
        // Nothing beyond the checkpoint (or fewer pieces than saved): nothing credited.
        assert_eq!(r.credit_found_after_crash(&saved, 2, &meta), 0);
    }

    #[test]
    fn have_round_trips_and_refuses_wrong_sizes() {
        let ih = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
        let mut r = ResumeData::new(&ih, "/tmp/x".into(), 1);
        let mut b = Bitfield::new(13);
        b.set(0, true);
        b.set(12, true);
        r.set_have(Some(&b));
        assert_eq!(r.have(13), Some(b));
        assert_eq!(r.have(200), None);
        r.have = Some("!!not base64".into());
        assert_eq!(r.have(13), None);
    }
}
