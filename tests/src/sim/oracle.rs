//! The request oracle: per-peer request queues stay within the engine's configured bounds,
//! and the two ends of a connection agree about requests within what is on the link.
//!
//! For a connection between engines A and B, every request A counts as outstanding must be
//! somewhere: still on the link to B, queued at B (waiting, being read or held back), or
//! answered by a block or a reject that is on its way back. A request that is nowhere was
//! dropped silently and A would wait for it until it gives up on B. The converse does not
//! hold (A forgets requests to a peer it snubs, without a cancel), so only this side is
//! checked. A choke on its way to A is the exception: B has dropped A's queue, and A drops its
//! requests when the choke arrives.
//!
//! The world counts messages per direction as bytes enter the link ([`WireCount`] on send)
//! and as the receiver reads them (on delivery); the difference is what is in flight.

/// Counts peer-wire messages of one direction of a stream as its bytes go past.
///
/// A message counts once its last byte has gone past. The stream starts with the handshake.
#[derive(Clone, Debug, Default)]
pub struct WireCount {
    /// Bytes of the handshake still to pass (`None` before its first byte, which says how
    /// long it is).
    handshake_left: Option<usize>,
    /// Bytes of the current message's length prefix and id seen so far.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message's body still to pass.
    body_left: u64,
    /// The current message's id.
    id: u8,
    /// Messages counted so far.
    pub counts: MessageCounts,
}

/// Messages that matter to the request oracle, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// REQUEST.
    pub requests: u64,
    /// PIECE (a block).
    pub pieces: u64,
    /// REJECT (BEP 6).
    pub rejects: u64,
    /// CHOKE.
    pub chokes: u64,
}

impl MessageCounts {
    /// What `self` (counted upstream) has that `later` (counted downstream) has not yet.
    pub fn minus(&self, later: &MessageCounts) -> MessageCounts {
        MessageCounts {
            requests: self.requests.saturating_sub(later.requests),
            pieces: self.pieces.saturating_sub(later.pieces),
            rejects: self.rejects.saturating_sub(later.rejects),
            chokes: self.chokes.saturating_sub(later.chokes),
        }
    }
}

/// BEP 3 handshake: protocol string length byte, string, reserved, info-hash, peer id.
const HANDSHAKE_FIXED: usize = 1 + 8 + 20 + 20;

impl WireCount {
    /// Lets `data` (the next bytes of the stream) go past.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let left = match self.handshake_left {
                None => HANDSHAKE_FIXED + data[0] as usize,
                Some(n) => n,
            };
            if left > 0 {
                let n = left.min(data.len());
                self.handshake_left = Some(left - n);
                data = &data[n..];
                continue;
            }
            if self.body_left > 0 {
                let n = self.body_left.min(data.len() as u64);
                self.body_left -= n;
                data = &data[n as usize..];
                if self.body_left == 0 {
                    self.count();
                }
                continue;
            }
            if self.header_len == 0 && data.len() >= 5 {
                // The common case: a whole header at hand.
                let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                if len == 0 {
                    data = &data[4..];
                    continue;
                }
                self.id = data[4];
                self.body_left = u64::from(len) - 1;
                data = &data[5..];
                if self.body_left == 0 {
                    self.count();
                }
                continue;
            }
            // Collect the length prefix and the id byte by byte.
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            let len = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
            match self.header_len {
                4 if len == 0 => self.header_len = 0, // keep-alive
                5 => {
                    self.id = self.header[4];
                    self.header_len = 0;
                    self.body_left = u64::from(len) - 1;
                    if self.body_left == 0 {
                        self.count();
                    }
                }
                _ => {}
            }
        }
    }

    fn count(&mut self) {
        let c = &mut self.counts;
        match self.id {
            0 => c.chokes += 1,
            6 => c.requests += 1,
            7 => c.pieces += 1,
            16 => c.rejects += 1,
            _ => {}
        }
    }
}

/// One end's request figures for a connection (from `Engine::peer_requests`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// The other end's requests it has queued and not served.
    pub queued: usize,
    /// Its requests to the other end not yet answered.
    pub outstanding: usize,
}

/// The configured bounds (every simulated engine has the same config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `Config::max_requests_per_peer`: our requests outstanding with one peer.
    pub max_requests_per_peer: usize,
    /// `Config::max_peer_requests`: a peer's requests we queue (and the `reqq` we announce,
    /// which the other end must respect).
    pub max_peer_requests: usize,
}

/// Checks one connection between engines `a` and `b`, given what is on the link each way;
/// returns what is wrong, naming the ends `names` (formatted only then).
pub fn check_requests(
    limits: Limits,
    names: [&dyn std::fmt::Display; 2],
    ends: [End; 2],
    a_to_b: MessageCounts,
    b_to_a: MessageCounts,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let on_link = [a_to_b, b_to_a];
    for i in 0..2 {
        let (me, other) = (ends[i], ends[1 - i]);
        let (to_other, from_other) = (on_link[i], on_link[1 - i]);
        let (name, other_name) = (names[i], names[1 - i]);
        let max_out = limits.max_requests_per_peer.min(limits.max_peer_requests);
        if me.outstanding > max_out {
            wrong.push(format!(
                "{name} has {} requests outstanding with {other_name}, bound {max_out} \
                 (min of max_requests_per_peer and the peer's reqq)",
                me.outstanding
            ));
        }
        if me.queued > limits.max_peer_requests {
            wrong.push(format!(
                "{name} holds {} requests from {other_name}, bound max_peer_requests {}",
                me.queued, limits.max_peer_requests
            ));
        }
        if from_other.chokes == 0 {
            let accounted = other.queued as u64 + to_other.requests + from_other.pieces + from_other.rejects;
            if me.outstanding as u64 > accounted {
                wrong.push(format!(
                    "{name} counts {} requests outstanding with {other_name}, which holds {} with {} more \
                     on the way and {} blocks and {} rejects coming back: {} requests were lost",
                    me.outstanding,
                    other.queued,
                    to_other.requests,
                    from_other.pieces,
                    from_other.rejects,
                    me.outstanding as u64 - accounted
                ));
            }
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_requests_per_peer: 512, max_peer_requests: 500 };

    fn handshake() -> Vec<u8> {
        let mut h = vec![19];
        h.extend_from_slice(b"BitTorrent protocol");
        h.extend_from_slice(&[0; 48]);
        h
    }

    fn msg(id: u8, body_len: usize) -> Vec<u8> {
        let mut m = ((body_len + 1) as u32).to_be_bytes().to_vec();
        m.push(id);
        m.extend(std::iter::repeat_n(0xaa, body_len));
        m
    }

    #[test]
    fn counts_messages_however_the_stream_is_cut() {
        let mut stream = handshake();
        stream.extend(msg(6, 12)); // request
        stream.extend([0, 0, 0, 0]); // keep-alive
        stream.extend(msg(7, 8 + 16384)); // piece
        stream.extend(msg(0, 0)); // choke
        stream.extend(msg(16, 12)); // reject
        stream.extend(msg(20, 30)); // extended: not counted
        stream.extend(msg(6, 12));
        let all = MessageCounts { requests: 2, pieces: 1, rejects: 1, chokes: 1 };
        for cut in [1, 3, 5, 67, 68, 69, 72, 73, 90, 1000, stream.len() - 1] {
            let mut w = WireCount::default();
            w.feed(&stream[..cut]);
            let early = w.counts;
            w.feed(&stream[cut..]);
            assert_eq!(w.counts, all, "cut at {cut}");
            assert!(early.requests <= 2 && all.minus(&early).requests == 2 - early.requests);
        }
        let mut w = WireCount::default();
        for b in &stream {
            w.feed(std::slice::from_ref(b));
        }
        assert_eq!(w.counts, all, "byte by byte");
        // A message counts only once its last byte is in.
        let mut w = WireCount::default();
        w.feed(&stream[..68 + 16]);
        assert_eq!(w.counts.requests, 0);
        w.feed(&stream[68 + 16..68 + 17]);
        assert_eq!(w.counts.requests, 1);
    }

    #[test]
    fn agreeing_ends_pass() {
        let a = End { queued: 0, outstanding: 40 };
        let b = End { queued: 25, outstanding: 0 };
        let to_b = MessageCounts { requests: 10, ..Default::default() };
        let to_a = MessageCounts { pieces: 3, rejects: 2, ..Default::default() };
        assert_eq!(check_requests(LIMITS, [&"a", &"b"], [a, b], to_b, to_a), Vec::<String>::new());
        // B may hold more than A counts (A forgot requests to a peer it snubbed).
        let b = End { queued: 90, outstanding: 0 };
        assert!(check_requests(LIMITS, [&"a", &"b"], [a, b], to_b, to_a).is_empty());
    }

    #[test]
    fn a_lost_request_fires() {
        let a = End { queued: 0, outstanding: 41 };
        let b = End { queued: 25, outstanding: 0 };
        let to_b = MessageCounts { requests: 10, ..Default::default() };
        let to_a = MessageCounts { pieces: 3, rejects: 2, ..Default::default() };
        let wrong = check_requests(LIMITS, [&"a", &"b"], [a, b], to_b, to_a);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("1 requests were lost"), "{wrong:?}");
        // ...unless a choke is coming back: B dropped A's queue, A will drop its requests.
        let to_a = MessageCounts { chokes: 1, ..to_a };
        assert!(check_requests(LIMITS, [&"a", &"b"], [a, b], to_b, to_a).is_empty());
    }

    #[test]
    fn broken_bounds_fire() {
        let fine = End { queued: 500, outstanding: 500 };
        let quiet = MessageCounts::default();
        let link = MessageCounts { requests: 501, ..quiet };
        assert!(check_requests(LIMITS, [&"a", &"b"], [fine, fine], quiet, quiet).is_empty());
        // One more than the peer's reqq, and one more than the queue bound.
        let greedy = End { queued: 0, outstanding: 501 };
        let wrong = check_requests(LIMITS, [&"a", &"b"], [greedy, End { queued: 0, outstanding: 0 }], link, quiet);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("bound 500"), "{wrong:?}");
        let hoarder = End { queued: 501, outstanding: 0 };
        let wrong = check_requests(LIMITS, [&"a", &"b"], [hoarder, End { queued: 0, outstanding: 0 }], quiet, quiet);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("holds 501 requests"), "{wrong:?}");
        // With a tighter configured bound, the same figures fire.
        let tight = Limits { max_requests_per_peer: 100, max_peer_requests: 500 };
        let some = End { queued: 0, outstanding: 101 };
        let wrong = check_requests(tight, [&"a", &"b"], [some, End { queued: 0, outstanding: 0 }], link, quiet);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
    }
}
