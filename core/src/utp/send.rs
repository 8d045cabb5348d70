//! The sending half of a connection: bytes written but not yet sent, the packets in flight,
//! and what an acknowledgement (cumulative, duplicate or selective) does to them.

use std::collections::VecDeque;
use std::time::Duration;

use super::packet::{PacketType, SelectiveAck, MAX_SACK_BYTES};
use super::seq::distance;
use crate::types::Instant;

/// At most this many packets are in flight: far below half the 16-bit sequence space, so
/// wrapping comparisons stay unambiguous.
const MAX_IN_FLIGHT: usize = 4096;
/// A packet counts as lost once this many later packets were selectively acknowledged, or
/// after this many duplicate ACKs (TCP's fast retransmit, as libutp and libtorrent).
const DUP_ACK_LIMIT: u32 = 3;
/// How far past the oldest packet in flight a selective ACK reaches (its bit 0 is the second
/// packet): only packets this close can be selectively acknowledged.
const SACK_REACH: usize = 2 + 8 * MAX_SACK_BYTES;

/// A packet sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    seq: u16,
    kind: PacketType,
    payload: Vec<u8>,
    /// When it was last sent.
    sent_at: Instant,
    /// How often it was sent.
    transmissions: u32,
    /// Lost (timeout, duplicate ACKs or SACK): to be sent again.
    resend: bool,
    /// Selectively acknowledged: kept until the cumulative ACK passes it.
    sacked: bool,
}

impl InFlight {
    /// Whether it occupies the congestion window.
    fn counted(&self) -> bool {
        self.transmissions > 0 && !self.resend && !self.sacked
    }
}

/// A packet to put on the wire now; its payload is borrowed from the send buffer, which keeps
/// it until acknowledged (no copy per transmission).
#[derive(Debug)]
pub(super) struct Outgoing<'a> {
    pub(super) seq: u16,
    pub(super) kind: PacketType,
    pub(super) payload: &'a [u8],
    /// It was sent before.
    pub(super) again: bool,
}

/// What an acknowledgement did.
#[derive(Debug, Default)]
pub(super) struct Acked {
    /// Payload bytes newly acknowledged (cumulatively or selectively).
    pub(super) bytes: usize,
    /// A round-trip sample from a packet sent once.
    pub(super) rtt: Option<Duration>,
    /// The first packet found lost, if any.
    pub(super) lost: Option<u16>,
    /// Our FIN was acknowledged.
    pub(super) fin_acked: bool,
    /// The cumulative ACK moved.
    pub(super) progress: bool,
    /// The largest payload among the packets newly acknowledged.
    pub(super) largest_acked: usize,
    /// The largest payload among the packets newly found lost.
    pub(super) largest_lost: usize,
}

/// What became of a packet sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Acknowledged (cumulatively or selectively).
    Acked,
    /// Found lost: it was, or is to be, sent again.
    Lost,
    /// In flight.
    Pending,
}

/// The ACK number does not acknowledge anything we could have sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct WildAck;

/// The sending half.
#[derive(Debug)]
pub(super) struct Sender {
    /// The sequence number the next new packet gets.
    next_seq: u16,
    /// Bytes written and not yet in a packet.
    unsent: VecDeque<u8>,
    /// Packets from the oldest unacknowledged one on, in sequence order without gaps.
    in_flight: VecDeque<InFlight>,
    /// Payload bytes held in `in_flight`.
    held: usize,
    /// Payload bytes occupying the congestion window.
    window: usize,
    /// The send buffer's size: `unsent` plus `held` never exceed it.
    capacity: usize,
    /// The application closed: a FIN follows the last byte.
    fin_queued: bool,
    /// The FIN has its sequence number.
    fin_sent: bool,
    /// Duplicate ACKs in a row.
    dup_acks: u32,
    /// Packets in `in_flight` marked `resend`: without any, `next` skips looking for them.
    to_resend: usize,
}

impl Sender {
    /// A sender whose first packet gets sequence number `next_seq`.
    pub(super) fn new(next_seq: u16, capacity: usize) -> Sender {
        Sender {
            next_seq,
            unsent: VecDeque::new(),
            in_flight: VecDeque::new(),
            held: 0,
            window: 0,
            capacity,
            fin_queued: false,
            fin_sent: false,
            dup_acks: 0,
            to_resend: 0,
        }
    }

    /// The sequence number the next new packet gets.
    pub(super) fn next_seq(&self) -> u16 {
        self.next_seq
    }

    /// Payload bytes in the congestion window.
    pub(super) fn window(&self) -> usize {
        self.window
    }

    /// Room left in the send buffer.
    pub(super) fn room(&self) -> usize {
        if self.fin_queued {
            return 0;
        }
        self.capacity.saturating_sub(self.unsent.len() + self.held)
    }

    /// Whether anything waits to be sent or acknowledged.
    pub(super) fn busy(&self) -> bool {
        !self.unsent.is_empty() || !self.in_flight.is_empty() || (self.fin_queued && !self.fin_sent)
    }

    /// Whether new bytes wait to be put in packets.
    pub(super) fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Takes as much of `bytes` as the buffer has room for; returns how much.
    pub(super) fn write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        self.unsent.extend(&bytes[..n]);
        n
    }

    /// Queues the FIN after the bytes written so far.
    pub(super) fn close(&mut self) {
        self.fin_queued = true;
    }

    /// Takes an acknowledgement of everything up to `ack_nr`, and the selective ACK beside it.
    /// `state` says the packet carried no data (only those count as duplicate ACKs).
    pub(super) fn on_ack(
        &mut self,
        ack_nr: u16,
        sack: Option<&SelectiveAck>,
        state: bool,
        now: Instant,
    ) -> Result<Acked, WildAck> {
        let base = self.next_seq.wrapping_sub(self.in_flight.len() as u16).wrapping_sub(1);
        let newly = distance(base, ack_nr);
        if usize::from(newly) > self.in_flight.len() {
            return Err(WildAck);
        }
        let mut acked = Acked { progress: newly > 0, ..Acked::default() };
        for _ in 0..newly {
            let p = self.in_flight.pop_front().expect("newly <= in_flight.len()");
            self.forget(&p);
            if !p.sacked {
                acked.bytes += p.payload.len();
                acked.largest_acked = acked.largest_acked.max(p.payload.len());
                // Karn: only a packet sent once gives a sample; a sacked one was answered
                // earlier than now.
                if p.transmissions == 1 {
                    acked.rtt = Some(now - p.sent_at);
                }
            }
            acked.fin_acked |= p.kind == PacketType::Fin;
        }
        if newly > 0 {
            self.dup_acks = 0;
        } else if state && self.in_flight.iter().any(InFlight::counted) {
            self.dup_acks += 1;
        }
        if let Some(sack) = sack {
            for offset in sack.received() {
                // Bit 0 is ack_nr + 2, which is in_flight[1] now that ack_nr + 1 is the front.
                let Some(p) = self.in_flight.get_mut(usize::from(offset) + 1) else { break };
                if p.transmissions > 0 && !p.sacked {
                    if p.counted() {
                        self.window -= p.payload.len();
                    }
                    p.sacked = true;
                    if p.resend {
                        // Its first copy arrived after all: no need to send it again.
                        p.resend = false;
                        self.to_resend -= 1;
                    }
                    acked.bytes += p.payload.len();
                }
            }
        }
        (acked.lost, acked.largest_lost) = self.detect_loss(sack.is_some());
        Ok(acked)
    }

    /// Marks for resending the packets behind which enough later ones were selectively
    /// acknowledged, and the oldest one after enough duplicate ACKs. A packet sent again is
    /// marked again only once a packet sent after it was selectively acknowledged: the holes
    /// a SACK still shows were mostly resent already and their answers are on the way.
    /// Returns the last packet marked and the largest payload among those marked.
    fn detect_loss(&mut self, sacked: bool) -> (Option<u16>, usize) {
        let mut lost = None;
        let mut largest = 0;
        if sacked {
            let mut later_sacked = 0u32;
            let mut newest_sacked: Option<Instant> = None;
            // Selectively acknowledged packets lie within the reach of a SACK past the front.
            let reach = self.in_flight.len().min(SACK_REACH);
            for p in self.in_flight.range_mut(..reach).rev() {
                if p.sacked {
                    later_sacked += 1;
                    newest_sacked = newest_sacked.max(Some(p.sent_at));
                } else if later_sacked >= DUP_ACK_LIMIT
                    && p.counted()
                    && (p.transmissions == 1 || newest_sacked.is_some_and(|t| t > p.sent_at))
                {
                    p.resend = true;
                    self.to_resend += 1;
                    self.window -= p.payload.len();
                    lost = Some(p.seq);
                    largest = largest.max(p.payload.len());
                }
            }
        }
        if self.dup_acks >= DUP_ACK_LIMIT {
            self.dup_acks = 0;
            if let Some(p) = self.in_flight.front_mut().filter(|p| p.counted()) {
                p.resend = true;
                self.to_resend += 1;
                self.window -= p.payload.len();
                lost = Some(p.seq);
                largest = largest.max(p.payload.len());
            }
        }
        (lost, largest)
    }

    /// What became of packet `seq` (sent before).
    pub(super) fn fate(&self, seq: u16) -> Fate {
        let front = self.next_seq.wrapping_sub(self.in_flight.len() as u16);
        match self.in_flight.get(usize::from(distance(front, seq))) {
            // Before the oldest packet in flight: acknowledged.
            None => Fate::Acked,
            Some(p) if p.sacked => Fate::Acked,
            Some(p) if p.resend || p.transmissions > 1 => Fate::Lost,
            Some(_) => Fate::Pending,
        }
    }

    /// The payload size of the next new packet: what is unsent, up to `mss`.
    pub(super) fn next_new_len(&self, mss: usize) -> usize {
        self.unsent.len().min(mss)
    }

    /// After a retransmission timeout: every packet not selectively acknowledged is resent.
    /// Returns the largest payload among them.
    pub(super) fn on_timeout(&mut self) -> usize {
        let mut largest = 0;
        for p in self.in_flight.iter_mut().filter(|p| p.transmissions > 0 && !p.sacked && !p.resend) {
            p.resend = true;
            self.to_resend += 1;
            largest = largest.max(p.payload.len());
        }
        self.window = 0;
        largest
    }

    /// The next packet to send within `allowed` bytes of window: a lost packet first, then new
    /// bytes (at most `mss`), then the FIN. A packet smaller than `mss` goes only when nothing
    /// else is in flight (no silly windows).
    pub(super) fn next(&mut self, allowed: usize, mss: usize, now: Instant) -> Option<Outgoing<'_>> {
        let room = allowed.saturating_sub(self.window);
        if self.to_resend > 0 {
            if let Some(i) = self.in_flight.iter().position(|p| p.resend) {
                let p = &mut self.in_flight[i];
                if p.payload.len() > room && self.window > 0 {
                    return None;
                }
                p.resend = false;
                p.transmissions += 1;
                p.sent_at = now;
                self.to_resend -= 1;
                self.window += p.payload.len();
                let p = &self.in_flight[i];
                return Some(Outgoing { seq: p.seq, kind: p.kind, payload: &p.payload, again: true });
            }
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let (kind, payload) = if !self.unsent.is_empty() {
            let full = self.unsent.len().min(mss);
            let size = if full <= room {
                full
            } else if self.window == 0 && room > 0 {
                room
            } else {
                return None;
            };
            (PacketType::Data, self.take_unsent(size))
        } else if self.fin_queued && !self.fin_sent {
            self.fin_sent = true;
            (PacketType::Fin, Vec::new())
        } else {
            return None;
        };
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        self.held += payload.len();
        self.window += payload.len();
        self.in_flight.push_back(InFlight {
            seq,
            kind,
            payload,
            sent_at: now,
            transmissions: 1,
            resend: false,
            sacked: false,
        });
        let p = self.in_flight.back().expect("just pushed");
        Some(Outgoing { seq, kind, payload: &p.payload, again: false })
    }

    /// The first `size` unsent bytes, copied out slice by slice.
    fn take_unsent(&mut self, size: usize) -> Vec<u8> {
        let mut payload = Vec::with_capacity(size);
        let (a, b) = self.unsent.as_slices();
        let from_a = size.min(a.len());
        payload.extend_from_slice(&a[..from_a]);
        payload.extend_from_slice(&b[..size - from_a]);
        self.unsent.drain(..size);
        payload
    }

    /// Drops a packet's bytes from the counters once it leaves `in_flight`.
    fn forget(&mut self, p: &InFlight) {
        self.held -= p.payload.len();
        if p.resend {
            self.to_resend -= 1;
        }
        if p.counted() {
            self.window -= p.payload.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Sender, WildAck};
    use crate::utp::packet::{PacketType, SelectiveAck};
    use crate::Instant;

    const T0: Instant = Instant::ZERO;

    #[test]
    fn cumulative_and_selective_acks_free_the_window() {
        let mut s = Sender::new(65534, 10_000);
        assert_eq!(s.write(&[7; 5000]), 5000);
        let seqs: Vec<u16> = std::iter::from_fn(|| s.next(5000, 1000, T0).map(|p| p.seq)).collect();
        assert_eq!(seqs, [65534, 65535, 0, 1, 2]);
        assert_eq!(s.window(), 5000);
        assert_eq!(s.on_ack(5, None, true, T0).unwrap_err(), WildAck);
        let sack = SelectiveAck { mask: vec![0b111, 0, 0, 0] }; // 0, 1, 2 arrived
        let a = s.on_ack(65534, Some(&sack), true, Instant::from_micros(10)).unwrap();
        assert_eq!((a.bytes, a.lost, a.rtt), (4000, Some(65535), Some(std::time::Duration::from_micros(10))));
        assert_eq!(s.window(), 0);
        let again = s.next(1000, 1000, T0).map(|p| (p.seq, p.kind));
        assert_eq!(again, Some((65535, PacketType::Data)));
        let a = s.on_ack(2, None, true, T0).unwrap();
        assert_eq!((a.bytes, a.rtt), (1000, None), "sacked bytes count once; no sample from a resend");
        assert!(!s.busy());
    }

    #[test]
    fn three_duplicate_acks_resend_the_oldest_and_the_fin_comes_last() {
        let mut s = Sender::new(10, 10_000);
        s.write(&[1; 3000]);
        s.close();
        assert_eq!(s.room(), 0);
        while s.next(10_000, 1000, T0).is_some() {}
        assert_eq!(s.next_seq(), 14, "three data packets and the FIN");
        assert_eq!(s.on_ack(9, None, false, T0).unwrap().lost, None, "a data packet is no duplicate ACK");
        assert_eq!(s.on_ack(9, None, true, T0).unwrap().lost, None);
        assert_eq!(s.on_ack(9, None, true, T0).unwrap().lost, None);
        assert_eq!(s.on_ack(9, None, true, T0).unwrap().lost, Some(10));
        assert_eq!(s.next(10_000, 1000, T0).map(|p| p.seq), Some(10));
        let a = s.on_ack(13, None, true, T0).unwrap();
        assert!(a.fin_acked);
    }
}
