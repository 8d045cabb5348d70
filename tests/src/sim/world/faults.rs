//! The fault scheduler (crashes, leaves, partitions, resets, user commands over the fault
//! window) and the simulated user at an honest host.

use std::time::Duration;

use rand::Rng;
use shoal_core::{FilePriority, Instant};

use super::event::Ev;
use super::state::World;
use crate::sim::params::Faults;

impl World {
    pub(super) fn schedule_faults(&mut self) {
        let f: Faults = self.params.faults.clone();
        let end = self.params.fault_window;
        self.schedule(end, Ev::FaultsOff);
        let leechers: Vec<usize> = (self.params.seeders..self.params.peers).collect();
        if leechers.is_empty() {
            return;
        }
        let secs = end.as_secs().max(1);
        if f.churn || f.crash {
            let n = (leechers.len() as u64 * secs / 60).max(1);
            for _ in 0..n {
                let host = leechers[self.rng.random_range(0..leechers.len())];
                let at = Duration::from_millis(self.rng.random_range(1000..secs * 1000));
                let clean = match (f.churn, f.crash) {
                    (true, true) => self.rng.random_bool(0.5),
                    (c, _) => c,
                };
                self.schedule(at, Ev::Crash { host, clean });
            }
        }
        if f.partition {
            let n = (secs / 20).max(1);
            for _ in 0..n {
                let a = self.rng.random_range(0..self.params.peers);
                let b = self.rng.random_range(0..self.params.peers);
                let at = Duration::from_millis(self.rng.random_range(0..secs * 1000));
                let len = Duration::from_millis(self.rng.random_range(1000..30_000));
                let until = Instant::ZERO + at + len;
                if a != b {
                    self.schedule(at, Ev::Partition { a, b, until });
                }
            }
        }
        if f.commands {
            let n = (self.params.peers as u64 * secs / 15).max(1);
            for _ in 0..n {
                let host = self.rng.random_range(0..self.params.peers);
                let at = Duration::from_millis(self.rng.random_range(0..secs * 1000));
                self.schedule(at, Ev::Command { host });
            }
        }
        if f.net {
            let n = secs / 3;
            for _ in 0..n {
                let at = Duration::from_millis(self.rng.random_range(0..secs * 1000));
                self.schedule(at, Ev::ResetRandom);
            }
        }
    }

    /// One thing a user does to host `host`'s torrent, drawn at random.
    pub(super) fn command(&mut self, host: usize) {
        if !self.hosts[host].online || !self.faults_on {
            return;
        }
        let (now, epoch) = (self.now, self.hosts[host].epoch);
        let (files, pieces) = (self.tt.meta.info.files.len(), self.tt.pieces());
        let action = self.rng.random_range(0..6);
        let file = self.rng.random_range(0..files);
        let piece = self.rng.random_range(0..pieces);
        let on = self.rng.random_bool(0.5);
        let back = Duration::from_millis(self.rng.random_range(500..20_000));
        self.trace.mix(0x40 ^ (action << 8));
        let h = self.eh(host);
        let (Some(e), Some(t)) = (&mut h.engine, h.torrent) else { return };
        let name = match action {
            0 => {
                let _ = e.pause(t, now);
                self.schedule(back, Ev::Resume { host, epoch });
                "user_pauses"
            }
            1 => {
                let _ = e.recheck(t, now);
                "user_rechecks"
            }
            2 => {
                let _ = e.set_file_priority(t, file, FilePriority::Skip, now);
                "user_skips"
            }
            3 => {
                let p = if on { FilePriority::High } else { FilePriority::Normal };
                let _ = e.set_file_priority(t, file, p, now);
                "user_wants"
            }
            4 => {
                let _ = e.set_sequential(t, on, now);
                "user_sequential"
            }
            _ => {
                let _ = e.set_deadline_piece(t, on.then_some(piece), now);
                "user_deadlines"
            }
        };
        self.count(name);
        self.drain(host);
    }

    /// When faults stop, the user wants every file again and resumes a paused torrent.
    pub(super) fn undo_commands(&mut self, host: usize) {
        if !self.params.faults.commands || !self.hosts[host].online {
            return;
        }
        let now = self.now;
        let files = self.tt.meta.info.files.len();
        let h = self.eh(host);
        let (Some(e), Some(t)) = (&mut h.engine, h.torrent) else { return };
        for file in 0..files {
            let _ = e.set_file_priority(t, file, FilePriority::Normal, now);
        }
        let _ = e.resume(t, now);
        self.drain(host);
    }
}
