//! The receiving half of a connection: in-order bytes waiting for the application, packets
//! that arrived early, the selective ACK that reports them, and the peer's FIN.

use std::collections::{BTreeMap, VecDeque};

use super::packet::{SelectiveAck, MAX_SACK_BYTES};
use super::seq::distance;

/// How far past the cumulative ACK a packet may be and still be kept: as far as a selective
/// ACK can report (packets further out are dropped and sent again by the peer).
const MAX_REORDER: u16 = 1 + 8 * MAX_SACK_BYTES as u16;

/// What became of an arriving data or FIN packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arrival {
    /// It was new and kept (in order or early).
    Kept,
    /// It had arrived before (or was acknowledged already).
    Duplicate,
    /// It does not fit the receive buffer or lies too far ahead; dropped.
    Dropped,
}

/// The receiving half.
#[derive(Debug)]
pub(super) struct Receiver {
    /// The last sequence number received in order.
    ack_nr: u16,
    /// In-order bytes not read by the application yet.
    ready: VecDeque<u8>,
    /// Packets that arrived ahead of a gap, by sequence number.
    early: BTreeMap<u16, Vec<u8>>,
    /// Bytes held in `early`.
    early_bytes: usize,
    /// The receive buffer's size: `ready` plus `early` never exceed it.
    capacity: usize,
    /// The sequence number of the peer's FIN, once seen.
    eof: Option<u16>,
    /// Every packet up to and including the FIN has arrived.
    finished: bool,
}

impl Receiver {
    pub(super) fn new(ack_nr: u16, capacity: usize) -> Receiver {
        Receiver {
            ack_nr,
            ready: VecDeque::new(),
            early: BTreeMap::new(),
            early_bytes: 0,
            capacity,
            eof: None,
            finished: false,
        }
    }

    /// Sets the last in-order sequence number (the initiator learns it from the SYN's answer).
    pub(super) fn set_ack_nr(&mut self, ack_nr: u16) {
        self.ack_nr = ack_nr;
    }

    /// The last sequence number received in order.
    pub(super) fn ack_nr(&self) -> u16 {
        self.ack_nr
    }

    /// Free room in the receive buffer: the window we advertise.
    pub(super) fn room(&self) -> usize {
        self.capacity.saturating_sub(self.ready.len() + self.early_bytes)
    }

    /// Bytes ready to be read.
    pub(super) fn readable(&self) -> usize {
        self.ready.len()
    }

    /// Whether everything up to the peer's FIN has arrived.
    pub(super) fn finished(&self) -> bool {
        self.finished
    }

    /// Takes up to `max` in-order bytes.
    pub(super) fn read(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.ready.len());
        let mut bytes = Vec::with_capacity(n);
        let (a, b) = self.ready.as_slices();
        let from_a = n.min(a.len());
        bytes.extend_from_slice(&a[..from_a]);
        bytes.extend_from_slice(&b[..n - from_a]);
        self.ready.drain(..n);
        bytes
    }

    /// Takes a data packet (`fin` false) or the peer's FIN (`fin` true, no payload).
    pub(super) fn arrive(&mut self, seq: u16, payload: &[u8], fin: bool) -> Arrival {
        let ahead = distance(self.ack_nr, seq);
        if ahead == 0 || ahead > u16::MAX / 2 || self.finished {
            return Arrival::Duplicate;
        }
        if ahead > MAX_REORDER || self.eof.is_some_and(|eof| super::seq::before(eof, seq)) {
            return Arrival::Dropped;
        }
        if fin {
            if self.eof.is_some() {
                return Arrival::Duplicate;
            }
            self.eof = Some(seq);
            self.advance();
            return Arrival::Kept;
        }
        if self.eof == Some(seq) || self.early.contains_key(&seq) {
            return Arrival::Duplicate;
        }
        if ahead == 1 {
            // The packet that fills the gap only needs room beside the unread bytes: were the
            // early packets counted, they could fill the buffer and block it for good. Memory
            // stays within the capacity plus one packet.
            if payload.len() > self.capacity.saturating_sub(self.ready.len()) {
                return Arrival::Dropped;
            }
            self.ready.extend(payload);
            self.ack_nr = seq;
            self.advance();
        } else {
            if payload.len() > self.room() {
                return Arrival::Dropped;
            }
            self.early_bytes += payload.len();
            self.early.insert(seq, payload.to_vec());
        }
        Arrival::Kept
    }

    /// Moves packets that are now in order from `early` to `ready`, and consumes the FIN when
    /// everything before it is in.
    fn advance(&mut self) {
        loop {
            let next = self.ack_nr.wrapping_add(1);
            if let Some(bytes) = self.early.remove(&next) {
                self.early_bytes -= bytes.len();
                self.ready.extend(bytes);
                self.ack_nr = next;
            } else if self.eof == Some(next) {
                self.ack_nr = next;
                self.finished = true;
                self.early.clear();
                self.early_bytes = 0;
                return;
            } else {
                return;
            }
        }
    }

    /// The selective ACK of the packets held early, if any (a multiple of four bytes, as BEP 29
    /// asks).
    pub(super) fn sack(&self) -> Option<SelectiveAck> {
        if self.early.is_empty() {
            return None;
        }
        let first = self.ack_nr.wrapping_add(2);
        let mut mask = vec![0u8; MAX_SACK_BYTES];
        for &seq in self.early.keys() {
            let bit = usize::from(distance(first, seq));
            if bit < 8 * MAX_SACK_BYTES {
                mask[bit / 8] |= 1 << (bit % 8);
            }
        }
        let used = mask.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        mask.truncate(used.div_ceil(4) * 4);
        (!mask.is_empty()).then_some(SelectiveAck { mask })
    }
}

#[cfg(test)]
mod tests {
    use super::{Arrival, Receiver};

    #[test]
    fn early_packets_wait_for_the_gap_and_are_reported() {
        let mut r = Receiver::new(65534, 100);
        assert_eq!(r.arrive(1, b"cc", false), Arrival::Kept);
        assert_eq!(r.arrive(1, b"cc", false), Arrival::Duplicate);
        assert_eq!(r.sack().unwrap().mask, vec![0b10, 0, 0, 0]);
        assert_eq!(r.room(), 98);
        assert_eq!(r.arrive(65535, b"aa", false), Arrival::Kept);
        assert_eq!(r.readable(), 2);
        assert_eq!(r.arrive(0, b"bb", false), Arrival::Kept);
        assert_eq!((r.ack_nr(), r.read(10)), (1, b"aabbcc".to_vec()));
        assert_eq!(r.sack(), None);
        assert_eq!(r.arrive(65000, b"x", false), Arrival::Duplicate, "long acknowledged");
    }

    #[test]
    fn a_full_buffer_drops_and_the_fin_waits_for_the_data_before_it() {
        let mut r = Receiver::new(0, 4);
        assert_eq!(r.arrive(3, b"", true), Arrival::Kept);
        assert_eq!(r.arrive(1, b"12345", false), Arrival::Dropped);
        assert_eq!(r.arrive(1, b"123", false), Arrival::Kept);
        assert!(!r.finished());
        assert_eq!(r.arrive(2, b"45", false), Arrival::Dropped, "one byte of room");
        assert_eq!(r.read(3), b"123");
        assert_eq!(r.arrive(4, b"z", false), Arrival::Dropped, "past the FIN");
        assert_eq!(r.arrive(2, b"45", false), Arrival::Kept);
        assert!(r.finished());
        assert_eq!(r.ack_nr(), 3);
    }
}
