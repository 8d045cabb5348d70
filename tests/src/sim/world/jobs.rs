//! The disk-job model: latency, fault draws, and the results of hash, write, read and verify
//! jobs against each host's simulated disk.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sha1::{Digest, Sha1};
use shoal_core::{DiskJobKind, JobResult};

use super::event::Ev;
use super::host::HostKind;
use super::state::World;
use crate::sim::disk::Draw;
use crate::sim::params::HashMode;

impl World {
    /// How long the next disk operation takes.
    pub(super) fn disk_latency(&mut self) -> Duration {
        Duration::from_micros(self.rng.random_range(self.params.disk_latency.0..=self.params.disk_latency.1))
    }

    /// The write of a piece that passed its hash job: its result and how long it took.
    pub(super) fn hash_write(
        &mut self,
        host: usize,
        piece: u32,
        data: &[u8],
        spans: Vec<shoal_core::FileSpan>,
    ) -> (Result<(), shoal_core::DiskError>, Duration) {
        let size = self.tt.meta.info.piece_size(piece);
        if spans != self.layout.piece_spans(piece, size) {
            self.violation(format!("host {host}: hash job of piece {piece} writes to the wrong spans"));
        }
        let latency = self.disk_latency();
        let eio = self.eh(host).disk.faults.write_eio;
        let draw = fault_draw(&mut self.rng, self.faults_on, eio, 0.0);
        let (tt, mode) = (self.tt.clone(), self.params.hash);
        let disk = &mut self.eh(host).disk;
        // With the hash oracle, a match already means the bytes equal the source.
        let result = match mode {
            HashMode::Oracle => disk.write_source(&tt, piece, draw),
            HashMode::Real => disk.write(&tt, piece, data, draw),
        };
        (result, latency)
    }

    pub(super) fn disk_job(&mut self, host: usize, job: shoal_core::DiskJob) {
        let epoch = self.hosts[host].epoch;
        self.trace.mix(0x17 ^ job.id.0 << 8);
        let tt = self.tt.clone();
        let faults_on = self.faults_on;
        let draw = |rng: &mut ChaCha8Rng, eio: f64, corrupt: f64| fault_draw(rng, faults_on, eio, corrupt);
        let latency = self.disk_latency();
        let h = match &mut self.hosts[host].kind {
            HostKind::Engine(h) => h,
            HostKind::Adversary(_) => unreachable!(),
        };
        let f = h.disk.faults.clone();
        let (result, violation) = match job.kind {
            DiskJobKind::Write { piece, spans, data } => {
                let size = tt.meta.info.piece_size(piece);
                let expected = self.layout.piece_spans(piece, size);
                let v = (spans != expected || data.len() != size as usize)
                    .then(|| format!("host {host}: write of piece {piece} with wrong spans or size"));
                h.jobs.insert(job.id, data.len() as u64);
                h.job_bytes += data.len() as u64;
                let d = draw(&mut self.rng, f.write_eio, 0.0);
                let result = h.disk.write(&tt, piece, &data, d);
                // The buffer goes back to the engine, as a runtime that is done with it does.
                (JobResult::Written { result, data }, v)
            }
            DiskJobKind::Read { block, len, spans } => {
                h.reads += 1;
                let d = draw(&mut self.rng, f.read_eio, f.corrupt_read);
                let places: Vec<(usize, usize)> = spans.iter().map(|p| (p.at, p.span.len as usize)).collect();
                let covered: u64 = places.iter().map(|p| p.1 as u64).sum();
                let fits = covered == block.len as u64 && places.iter().all(|(at, n)| at + n <= len);
                let read = if fits {
                    h.disk.read_placed(&tt, (block.piece, block.offset, block.len), &places, len, d)
                } else {
                    h.disk.read(&tt, block.piece, block.offset, block.len, d)
                };
                match read {
                    Ok(Some(data)) if fits => (JobResult::Read(Ok(data)), None),
                    Ok(Some(data)) => (
                        JobResult::Read(Ok(data)),
                        Some(format!("host {host}: read {block:?} whose spans do not fit its buffer")),
                    ),
                    Ok(None) => (
                        JobResult::Read(Err(shoal_core::DiskError {
                            kind: shoal_core::DiskErrorKind::Other,
                            message: "short read".into(),
                        })),
                        Some(format!("host {host}: read {block:?}, which it never wrote")),
                    ),
                    Err(e) => (JobResult::Read(Err(e)), None),
                }
            }
            DiskJobKind::Verify { piece, expected, .. } => {
                let d = draw(&mut self.rng, f.read_eio, f.corrupt_read);
                let size = tt.meta.info.piece_size(piece);
                let r = match h.disk.read(&tt, piece, 0, size, d) {
                    Err(e) => Err(e),
                    Ok(None) => Ok(false),
                    Ok(Some(bytes)) => Ok(match self.params.hash {
                        HashMode::Real => <[u8; 20]>::from(Sha1::digest(&bytes)) == expected,
                        HashMode::Oracle => {
                            let range = tt.piece_range(piece);
                            bytes.len() as u64 == range.end - range.start && tt.matches(range.start, &bytes)
                        }
                    }),
                };
                (JobResult::Verified(r), None)
            }
        };
        if let Some(v) = violation {
            self.violation(v);
        }
        self.schedule(latency, Ev::Job { host, epoch, job: job.id, result });
    }
}

/// Whether a disk operation fails (`eio`) or reads corrupted bytes (`corrupt`); never while
/// faults are off.
fn fault_draw(rng: &mut ChaCha8Rng, faults_on: bool, eio: f64, corrupt: f64) -> Draw {
    if !faults_on {
        return Draw::Ok;
    }
    let x: f64 = rng.random();
    if x < eio {
        Draw::Eio
    } else if x < eio + corrupt {
        Draw::Corrupt
    } else {
        Draw::Ok
    }
}
