//! The engine's output queue, with the ids it hands out, the route back from each job to
//! the torrent that owns it, and the encryption of what encrypted connections send.

use std::collections::{HashMap, VecDeque};

use super::event::Event;
use super::output::{Output, PeerIo};
use crate::mse::Cipher;
use crate::types::{ConnId, JobId, TorrentId};

/// What the engine has for the runtime, and the ids that route the runtime's answers back.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Last id handed out: jobs and connections share one sequence.
    last_id: u64,
    /// Which torrent each outstanding job belongs to.
    jobs: HashMap<JobId, TorrentId>,
    /// Connections whose sends are held or encrypted (MSE): every byte queued for one passes
    /// here, in the order it goes on the wire, which is the order RC4 needs.
    seals: HashMap<ConnId, Seal>,
}

/// What becomes of the bytes queued for an encrypted connection.
enum Seal {
    /// Its MSE handshake is under way: they wait (the first may become its initial payload).
    Hold(Vec<u8>),
    /// They are encrypted on their way out.
    Encrypt(Cipher),
}

impl Outbox {
    /// Queues an output for the runtime (sends of a sealed connection held or encrypted).
    pub(super) fn push(&mut self, mut o: Output) {
        if !self.seals.is_empty() {
            match &mut o {
                Output::Peer(PeerIo::Send { conn, data }) => match self.seals.get_mut(conn) {
                    Some(Seal::Hold(held)) => return held.extend_from_slice(data),
                    Some(Seal::Encrypt(cipher)) => cipher.apply(data),
                    None => {}
                },
                Output::Peer(PeerIo::Close { conn, .. }) => {
                    self.seals.remove(conn);
                }
                _ => {}
            }
        }
        self.queue.push_back(o);
    }

    /// Queues bytes of an MSE handshake, which are already what goes on the wire.
    pub(super) fn push_raw(&mut self, conn: ConnId, data: Vec<u8>) {
        if !data.is_empty() {
            self.queue.push_back(Output::Peer(PeerIo::Send { conn, data }));
        }
    }

    /// Holds what is queued for `conn` until [`Outbox::open`]: its MSE handshake begins.
    pub(super) fn hold(&mut self, conn: ConnId) {
        self.seals.insert(conn, Seal::Hold(Vec::new()));
    }

    /// The bytes held for `conn` if there are at most `max` of them (they leave the hold).
    pub(super) fn take_held(&mut self, conn: ConnId, max: usize) -> Vec<u8> {
        match self.seals.get_mut(&conn) {
            Some(Seal::Hold(held)) if held.len() <= max => std::mem::take(held),
            _ => Vec::new(),
        }
    }

    /// `conn`'s MSE handshake is done: what was held goes out through `cipher`, and so does
    /// everything after it (a plaintext stream is no longer sealed).
    pub(super) fn open(&mut self, conn: ConnId, cipher: Cipher) {
        let held = match self.seals.remove(&conn) {
            Some(Seal::Hold(held)) => held,
            _ => Vec::new(),
        };
        if !cipher.is_plaintext() {
            self.seals.insert(conn, Seal::Encrypt(cipher));
        }
        if !held.is_empty() {
            self.push(Output::Peer(PeerIo::Send { conn, data: held }));
        }
    }

    /// Forgets `conn`'s seal: the connection is gone.
    pub(super) fn unseal(&mut self, conn: ConnId) {
        self.seals.remove(&conn);
    }

    /// Queues an event for the application.
    pub(super) fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    /// The next output, oldest first.
    pub(super) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    /// A new id from the sequence jobs and connections share.
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// A new job id whose answer goes to `torrent`.
    pub(super) fn job(&mut self, torrent: TorrentId) -> JobId {
        let id = JobId(self.next_id());
        self.jobs.insert(id, torrent);
        id
    }

    /// A new job id not routed to a torrent (its owner keeps its own routes).
    pub(super) fn unrouted_job(&mut self) -> JobId {
        JobId(self.next_id())
    }

    /// A new connection id.
    pub(super) fn conn(&mut self) -> ConnId {
        ConnId(self.next_id())
    }

    /// The torrent a job belongs to, which keeps the route (a UDP exchange answers many times).
    pub(super) fn owner(&self, job: JobId) -> Option<TorrentId> {
        self.jobs.get(&job).copied()
    }

    /// The torrent a job belongs to, forgetting the route (the job answers once).
    pub(super) fn take_owner(&mut self, job: JobId) -> Option<TorrentId> {
        self.jobs.remove(&job)
    }

    /// Forgets a job's route: its owner ended it.
    pub(super) fn forget_job(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }

    /// Forgets every route to a removed torrent.
    pub(super) fn forget_torrent(&mut self, torrent: TorrentId) {
        self.jobs.retain(|_, owner| *owner != torrent);
    }

    /// Every queued output, for unit tests of the parts that write into the outbox.
    #[cfg(test)]
    pub(super) fn drain(&mut self) -> Vec<Output> {
        self.queue.drain(..).collect()
    }
}
