//! The engine's books, checked: counters kept beside the state they count must agree with it.
//! The simulator calls [`Engine::check_invariants`] after every step, as TigerBeetle asserts
//! its invariants: drift shows up at the step that caused it, not as a stall much later.

use super::Engine;

impl Engine {
    /// Checks that the engine's counters agree with its state; the first disagreement found,
    /// described, if not. Costs a walk over every peer and job: meant for tests and the
    /// simulator (call it between inputs, once the outputs are drained), not for every input
    /// of a busy daemon.
    ///
    /// * connection attempts in progress (`half_open`) are the peers still being dialled;
    /// * every routed connection is a peer of its torrent, and every peer is routed to it;
    /// * per torrent: the download's bytes are its piece buffers plus its hash and write jobs,
    ///   and every upload read a peer waits for is in flight for that peer.
    pub fn check_invariants(&self) -> Result<(), String> {
        let (mut dialing, mut peers) = (0, 0);
        for (id, torrent) in &self.torrents {
            torrent.check_invariants().map_err(|e| format!("torrent {id:?}: {e}"))?;
            for (conn, dialled) in torrent.conns() {
                dialing += usize::from(dialled);
                peers += 1;
                if self.conns.get(&conn) != Some(id) {
                    return Err(format!("{conn:?}, a peer of {id:?}, is not routed to it"));
                }
            }
        }
        if self.limits.half_open != dialing {
            return Err(format!("half_open {} != {dialing} peers being dialled", self.limits.half_open));
        }
        // Every peer is routed to its torrent, so equal counts leave no route without a peer.
        if self.conns.len() != peers {
            return Err(format!("{} connections routed, but torrents have {peers} peers", self.conns.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Engine;
    use crate::create::{PieceHasher, TorrentBuilder};
    use crate::engine::{AddTorrent, Config, Output, PeerIo};
    use crate::metainfo::Metainfo;
    use crate::types::{ConnId, Instant};

    /// An engine leeching a 4-piece torrent that has dialled one peer.
    fn dialling() -> Engine {
        let piece = 16 * 1024u32;
        let mut b = TorrentBuilder::new("books".into());
        b.set_piece_length(piece);
        b.add_file(vec!["data.bin".into()], u64::from(piece * 4));
        let mut hasher = PieceHasher::new(piece);
        hasher.update(&vec![7u8; (piece * 4) as usize]);
        let meta = Metainfo::from_bytes(&b.build(hasher.finish()).expect("builds")).expect("parses");
        // A TCP dial: the books below count it as half-open.
        let mut e = Engine::new(Config { utp: false, ..Config::default() }, 1, Instant::ZERO);
        let add = AddTorrent { check_existing: false, ..AddTorrent::new(meta) };
        let t = e.add_torrent(add, Instant::ZERO).expect("adds");
        e.add_peers(t, &["10.0.0.2:6881".parse().expect("an address")], Instant::ZERO).expect("its torrent");
        let dials = std::iter::from_fn(|| e.poll_output())
            .filter(|o| matches!(o, Output::Peer(PeerIo::Connect { .. })))
            .count();
        assert_eq!(dials, 1);
        e
    }

    #[test]
    fn consistent_books_pass() {
        dialling().check_invariants().expect("nothing drifted");
    }

    #[test]
    fn a_drifted_half_open_count_is_caught() {
        let mut e = dialling();
        e.limits.half_open += 1;
        let err = e.check_invariants().expect_err("one dial too many counted");
        assert!(err.contains("half_open 2 != 1"), "{err}");
    }

    #[test]
    fn a_peer_the_routing_table_lost_is_caught() {
        let mut e = dialling();
        e.conns.clear();
        let err = e.check_invariants().expect_err("the dialled peer is not routed");
        assert!(err.contains("is not routed to it"), "{err}");
    }

    #[test]
    fn a_route_to_a_closed_peer_is_caught() {
        let mut e = dialling();
        let t = *e.conns.values().next().expect("the dialled peer's route");
        e.conns.insert(ConnId(u64::MAX), t);
        let err = e.check_invariants().expect_err("a route without a peer");
        assert!(err.contains("2 connections routed, but torrents have 1 peers"), "{err}");
    }
}
