use super::*;
use rand::Rng;

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);
const C: ConnId = ConnId(3);
const D: ConnId = ConnId(4);

/// A picker of `n` single-block pieces.
fn one_block_pieces(n: u32, seed: u64) -> Picker {
    Picker::new(n, BLOCK_SIZE, u64::from(n) * u64::from(BLOCK_SIZE), seed)
}

fn bits(n: u32, set: &[u32]) -> Bitfield {
    let mut b = Bitfield::new(n);
    for &p in set {
        b.set(p, true);
    }
    b
}

fn pick(p: &mut Picker, conn: ConnId, has: &Bitfield, max: usize) -> Vec<BlockRef> {
    let mut out = Vec::new();
    p.pick(conn, has, false, max, &mut out);
    p.check_invariants();
    out
}

fn pieces_of(blocks: &[BlockRef]) -> Vec<u32> {
    blocks.iter().map(|b| b.piece).collect()
}

#[test]
fn rarest_piece_is_picked_first() {
    let mut p = one_block_pieces(4, 7);
    for (piece, count) in [(0, 3), (1, 1), (2, 3), (3, 2)] {
        for _ in 0..count {
            p.peer_has_piece(piece);
        }
    }
    assert_eq!(p.availability(1), 1);
    let all = Bitfield::full(4);
    assert_eq!(pieces_of(&pick(&mut p, A, &all, 1)), [1]);
    assert_eq!(pieces_of(&pick(&mut p, A, &all, 1)), [3]);
    let mut rest = pieces_of(&pick(&mut p, A, &all, 5));
    rest.sort();
    assert_eq!(rest, [0, 2]);
}

#[test]
fn availability_changes_reorder_and_seeds_count_apart() {
    let mut p = one_block_pieces(3, 1);
    p.peer_bitfield(&bits(3, &[0, 1]));
    p.peer_bitfield(&Bitfield::full(3)); // a seed
    p.peer_has_all();
    assert_eq!((p.availability(0), p.availability(2)), (3, 2));
    // Piece 2 is now the only one no non-seed has: rarest.
    let all = Bitfield::full(3);
    assert_eq!(pieces_of(&pick(&mut p, A, &all, 1)), [2]);
    p.peer_gone(B, &Bitfield::full(3), true);
    p.peer_gone(C, &bits(3, &[0, 1]), false);
    assert_eq!((p.availability(0), p.availability(2)), (1, 1));
    p.check_invariants();
}

#[test]
fn ties_are_broken_randomly_but_deterministically_per_seed() {
    let order = |seed| {
        let mut p = one_block_pieces(64, seed);
        p.peer_has_all();
        let mut out = Vec::new();
        for _ in 0..64 {
            p.pick(A, &Bitfield::new(64), true, 1, &mut out);
        }
        pieces_of(&out)
    };
    let (a, b) = (order(1), order(2));
    assert_eq!(a, order(1), "same seed, same order");
    assert_ne!(a, b, "different seeds, different orders");
    assert_ne!(a, (0..64).collect::<Vec<_>>(), "not index order");
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..64).collect::<Vec<_>>(), "every piece exactly once");
}

#[test]
fn started_pieces_are_finished_before_new_ones() {
    // Three pieces of four blocks.
    let mut p = Picker::new(3, 4 * BLOCK_SIZE, 12 * u64::from(BLOCK_SIZE), 3);
    p.peer_has_piece(0);
    p.peer_has_piece(0);
    p.peer_has_piece(1);
    p.peer_has_piece(1);
    p.peer_has_piece(2);
    let all = Bitfield::full(3);
    let first = pick(&mut p, A, &all, 2);
    assert_eq!(pieces_of(&first), [2, 2]);
    // Piece 0 becomes the rarest, but piece 2 is already started.
    p.peer_gone(D, &bits(3, &[0]), false);
    p.peer_gone(D, &bits(3, &[0]), false);
    let second = pick(&mut p, B, &all, 3);
    assert_eq!(second[..2], [p.geo.block(2, 2), p.geo.block(2, 3)]);
    assert_eq!(second[2].piece, 0);
    assert_eq!(p.in_flight_pieces(), 2);
}

#[test]
fn skipped_pieces_are_never_picked_and_do_not_block_finishing() {
    let mut p = one_block_pieces(4, 5);
    p.set_priority(1, Priority::Skip);
    p.set_priority(3, Priority::Skip);
    p.set_have(0);
    assert_eq!(p.wanted_remaining(), 1);
    assert!(!p.is_finished());
    let all = Bitfield::full(4);
    assert_eq!(pieces_of(&pick(&mut p, A, &all, 10)), [2]);
    assert!(pick(&mut p, B, &all, 10).iter().all(|b| b.piece == 2), "end-game of piece 2");
    p.hash_passed(2);
    assert!(p.is_finished());
    assert!(pick(&mut p, C, &all, 10).is_empty());
    assert_eq!(p.priority(1), Priority::Skip);
    assert_eq!(p.priority(99), Priority::Skip);
}

#[test]
fn priorities_order_high_normal_low() {
    let mut p = one_block_pieces(6, 9);
    for piece in 0..6 {
        for _ in 0..=piece {
            p.peer_has_piece(piece); // piece i has availability i + 1
        }
    }
    p.set_priority(5, Priority::High); // the most common piece
    p.set_priority(0, Priority::Low); // the rarest piece
    let all = Bitfield::full(6);
    let order = pieces_of(&pick(&mut p, A, &all, 6));
    assert_eq!(order, [5, 1, 2, 3, 4, 0]);
}

#[test]
fn sequential_mode_picks_in_index_order() {
    let mut p = one_block_pieces(10, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for piece in 0..10 {
        for _ in 0..rng.random_range(0..5) {
            p.peer_has_piece(piece);
        }
    }
    p.set_have(2);
    p.set_priority(4, Priority::Skip);
    p.set_sequential(true);
    let all = Bitfield::full(10);
    assert_eq!(pieces_of(&pick(&mut p, A, &all, 3)), [0, 1, 3]);
    assert_eq!(pieces_of(&pick(&mut p, A, &bits(10, &[7, 8, 9]), 2)), [7, 8]);
    p.set_priority(9, Priority::High);
    assert_eq!(pieces_of(&pick(&mut p, B, &all, 2)), [9, 5]);
}

#[test]
fn deadline_piece_and_its_successors_come_first() {
    let mut p = one_block_pieces(20, 2);
    p.peer_has_all();
    p.set_deadline_piece(Some(12));
    p.set_have(13);
    let all = Bitfield::full(20);
    let mut out = Vec::new();
    p.pick(A, &all, true, 3, &mut out);
    assert_eq!(pieces_of(&out), [12, 14, 15]);
    assert_eq!(p.deadline_window(), 12..20);
    p.set_deadline_piece(Some(18));
    assert_eq!(p.deadline_window(), 18..20, "the window stops at the last piece");
    p.set_deadline_piece(Some(99)); // out of range: ignored
    assert_eq!(p.deadline_window(), 0..0);
    assert_eq!(p.deadline_piece(), None);
    p.check_invariants();
}

#[test]
fn end_game_duplicates_and_cancellation() {
    let mut p = Picker::new(2, 2 * BLOCK_SIZE, 4 * u64::from(BLOCK_SIZE), 4);
    let all = Bitfield::full(2);
    assert_eq!(pick(&mut p, A, &all, 10).len(), 4);
    assert!(p.is_endgame());
    let dup_b = pick(&mut p, B, &all, 10);
    assert_eq!(dup_b.len(), 4, "end-game hands out blocks outstanding elsewhere");
    assert!(pick(&mut p, A, &all, 10).is_empty(), "never twice to the same peer");
    assert_eq!(pick(&mut p, C, &all, 10).len(), 4);
    assert!(pick(&mut p, D, &all, 10).is_empty(), "at most MAX_REQUESTERS per block");

    let block = p.geo.block(0, 0);
    assert_eq!(
        p.block_received(B, block),
        BlockOutcome::Accepted { piece_complete: false, also_requested_from: vec![A, C] }
    );
    assert_eq!(p.block_received(A, block), BlockOutcome::Unexpected, "already received");
    assert!(pick(&mut p, D, &all, 10).is_empty(), "still at three peers each");
    p.request_failed(A, p.geo.block(0, 1));
    assert_eq!(pick(&mut p, D, &all, 10), [p.geo.block(0, 1)]);
    p.check_invariants();
}

#[test]
fn peer_gone_releases_its_blocks() {
    let mut p = Picker::new(2, 2 * BLOCK_SIZE, 4 * u64::from(BLOCK_SIZE), 4);
    p.peer_has_piece(0);
    let all = Bitfield::full(2);
    let mine = pick(&mut p, A, &all, 2);
    assert_eq!(pieces_of(&mine), [1, 1], "piece 1 (availability 0) is rarer");
    p.peer_gone(A, &Bitfield::new(2), false);
    assert_eq!(p.in_flight_pieces(), 0);
    assert_eq!(pick(&mut p, B, &all, 2), mine);
    p.check_invariants();
}

#[test]
fn failed_request_becomes_requestable_unless_outstanding_elsewhere() {
    let mut p = one_block_pieces(1, 0);
    let all = Bitfield::full(1);
    let b = pick(&mut p, A, &all, 1);
    p.request_failed(B, b[0]); // B never asked: no effect
    assert!(p.is_endgame());
    p.request_failed(A, b[0]);
    assert!(!p.is_endgame());
    assert_eq!(pick(&mut p, B, &all, 1), b);
    assert_eq!(p.block_received(A, b[0]), BlockOutcome::Unexpected, "A's request is gone");
}

#[test]
fn hash_failure_makes_the_piece_pickable_again() {
    let mut p = Picker::new(1, 2 * BLOCK_SIZE, 2 * u64::from(BLOCK_SIZE), 0);
    let all = Bitfield::full(1);
    let blocks = pick(&mut p, A, &all, 1);
    let more = pick(&mut p, B, &all, 1);
    let accepted = |complete| BlockOutcome::Accepted { piece_complete: complete, also_requested_from: vec![] };
    assert_eq!(p.block_received(A, blocks[0]), accepted(false));
    assert_eq!(p.block_received(B, more[0]), accepted(true));
    assert_eq!(p.piece_contributors(0), &[A, B]);
    p.hash_failed(0);
    assert!(p.piece_contributors(0).is_empty());
    assert_eq!(p.in_flight_pieces(), 0);
    assert_eq!(pick(&mut p, C, &all, 5).len(), 2);
    p.hash_passed(0);
    assert!(p.is_finished() && p.has(0));
    p.reset_piece(0);
    assert!(!p.has(0) && !p.is_finished());
    assert_eq!(pick(&mut p, C, &all, 5).len(), 2);
}

#[test]
fn last_piece_and_last_block_are_short() {
    let p = Picker::new(4, 32 * 1024, 100_000, 0);
    assert_eq!((0..5).map(|i| p.piece_size(i)).collect::<Vec<_>>(), [32768, 32768, 32768, 1696, 0]);
    let mut p = Picker::new(2, 64 * 1024, 100_000, 0);
    p.peer_has_all();
    let mut out = Vec::new();
    p.set_sequential(true);
    p.pick(A, &Bitfield::new(2), true, 10, &mut out);
    let lens: Vec<(u32, u32, u32)> = out.iter().map(|b| (b.piece, b.offset, b.len)).collect();
    assert_eq!(
        lens,
        [
            (0, 0, BLOCK_SIZE),
            (0, BLOCK_SIZE, BLOCK_SIZE),
            (0, 2 * BLOCK_SIZE, BLOCK_SIZE),
            (0, 3 * BLOCK_SIZE, BLOCK_SIZE),
            (1, 0, BLOCK_SIZE),
            (1, BLOCK_SIZE, BLOCK_SIZE),
            (1, 2 * BLOCK_SIZE, 1696),
        ]
    );
    assert_eq!(out.iter().map(|b| u64::from(b.len)).sum::<u64>(), 100_000);
}

#[test]
fn hostile_input_is_rejected_without_panicking() {
    let mut p = Picker::new(2, 64 * 1024, 100_000, 0);
    let all = Bitfield::full(2);
    let out = pick(&mut p, A, &all, 10);
    assert_eq!(out.len(), 7);
    let real = BlockRef { piece: 1, offset: 2 * BLOCK_SIZE, len: 1696 };
    assert!(out.contains(&real));
    let bad = [
        BlockRef { piece: 2, offset: 0, len: BLOCK_SIZE },
        BlockRef { piece: u32::MAX, offset: 0, len: BLOCK_SIZE },
        BlockRef { piece: 0, offset: 1, len: BLOCK_SIZE },
        BlockRef { piece: 0, offset: 4 * BLOCK_SIZE, len: BLOCK_SIZE },
        BlockRef { piece: 0, offset: u32::MAX - 1, len: 2 },
        BlockRef { piece: 0, offset: 0, len: BLOCK_SIZE - 1 },
        BlockRef { piece: 0, offset: 0, len: 0 },
        BlockRef { piece: 0, offset: 0, len: u32::MAX },
        BlockRef { piece: 1, offset: 2 * BLOCK_SIZE, len: BLOCK_SIZE }, // last block is short
    ];
    for b in bad {
        assert_eq!(p.block_received(A, b), BlockOutcome::Unexpected, "{b:?}");
        p.request_failed(A, b);
    }
    assert_eq!(p.block_received(B, real), BlockOutcome::Unexpected, "not requested from B");
    assert!(matches!(p.block_received(A, real), BlockOutcome::Accepted { .. }));
    assert_eq!(p.block_received(A, real), BlockOutcome::Unexpected, "duplicate");
    p.set_have(0);
    assert_eq!(p.block_received(A, p.geo.block(0, 0)), BlockOutcome::Unexpected, "had");

    // Out-of-range indices and mismatched bitfields are ignored.
    p.peer_has_piece(2);
    p.peer_has_piece(u32::MAX);
    p.peer_bitfield(&Bitfield::full(9));
    p.peer_gone(C, &Bitfield::full(9), false);
    p.peer_gone(C, &Bitfield::full(9), false);
    p.peer_gone(C, &Bitfield::new(0), true);
    p.set_priority(7, Priority::High);
    p.set_have(7);
    p.hash_failed(7);
    p.hash_passed(u32::MAX);
    p.reset_piece(u32::MAX);
    assert!(p.piece_contributors(u32::MAX).is_empty());
    assert_eq!(p.availability(u32::MAX), 0);
    p.check_invariants();

    // Degenerate sizes do not panic either.
    let mut z = Picker::new(0, 0, 0, 0);
    assert!(z.is_finished());
    z.pick(A, &Bitfield::new(0), true, 10, &mut Vec::new());
    let w = Picker::new(3, 16, 1 << 40, 0);
    assert_eq!(w.piece_size(2), 16);
}

#[test]
fn a_peer_with_few_useful_pieces_still_gets_them() {
    // The bounded walk cannot reach the one piece this peer has: the fallback scan does.
    let n = 3 * WALK_LIMIT as u32;
    let mut p = one_block_pieces(n, 1);
    p.peer_has_piece(n - 1);
    for piece in 0..n - 1 {
        p.peer_has_piece(piece); // every piece but the last, twice: the last is rarest...
        p.peer_has_piece(piece);
    }
    p.peer_has_piece(7); // ...and piece 7 is the most common
    let only = bits(n, &[7]);
    assert_eq!(pieces_of(&pick(&mut p, A, &only, 4)), [7]);
}

#[test]
fn a_block_sent_after_we_gave_up_on_it_is_kept_while_still_needed() {
    // Two pieces of two blocks.
    let mut p = Picker::new(2, 2 * BLOCK_SIZE, 4 * u64::from(BLOCK_SIZE), 1);
    p.peer_has_all();
    let mut out = Vec::new();
    p.pick(A, &Bitfield::new(2), true, 4, &mut out);
    assert_eq!(out.len(), 4);
    for b in &out {
        p.request_failed(A, *b);
    }
    p.check_invariants();
    // Block 0 of piece 0 is asked of B; A sends it and block 1 anyway.
    let mut again = Vec::new();
    p.pick(B, &Bitfield::new(2), true, 1, &mut again);
    let (b0, b1) = (p.geo.block(again[0].piece, 0), p.geo.block(again[0].piece, 1));
    assert_eq!(again, [b0]);
    let outcome = p.late_block_received(A, b0);
    assert_eq!(outcome, BlockOutcome::Accepted { piece_complete: false, also_requested_from: vec![B] });
    assert_eq!(p.block_received(B, b0), BlockOutcome::Unexpected, "B's request went with it");
    assert_eq!(p.late_block_received(A, b0), BlockOutcome::Unexpected, "a second copy is waste");
    let outcome = p.late_block_received(A, b1);
    assert_eq!(outcome, BlockOutcome::Accepted { piece_complete: true, also_requested_from: vec![] });
    p.check_invariants();
    p.hash_passed(b0.piece);
    assert_eq!(p.late_block_received(A, b1), BlockOutcome::Unexpected, "a piece we have");
    // A piece no longer wanted, and something that is not a block.
    let other = 1 - b0.piece;
    p.set_priority(other, Priority::Skip);
    assert_eq!(p.late_block_received(A, p.geo.block(other, 0)), BlockOutcome::Unexpected);
    assert_eq!(p.late_block_received(A, BlockRef { piece: other, offset: 1, len: 5 }), BlockOutcome::Unexpected);
    p.check_invariants();
}

/// Random operations against the invariant checker.
#[test]
fn random_operations_keep_invariants() {
    let n = 40;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut p = Picker::new(n, 3 * BLOCK_SIZE, 3 * u64::from(BLOCK_SIZE) * u64::from(n) - 5, 3);
    let mut peers: Vec<(ConnId, Bitfield)> = Vec::new();
    let mut outstanding: Vec<(ConnId, BlockRef)> = Vec::new();
    let (mut endgame_steps, mut finished_steps) = (0u32, 0u32);
    for step in 0..20_000u64 {
        match rng.random_range(0..10) {
            0 if peers.len() < 12 => {
                let mut bf = Bitfield::new(n);
                for piece in 0..n {
                    bf.set(piece, rng.random_bool(0.5));
                }
                p.peer_bitfield(&bf);
                peers.push((ConnId(step), bf));
            }
            1 if !peers.is_empty() => {
                let (conn, bf) = peers.swap_remove(rng.random_range(0..peers.len()));
                p.peer_gone(conn, &bf, false);
                outstanding.retain(|(c, _)| *c != conn);
            }
            2 if !peers.is_empty() => {
                let i = rng.random_range(0..peers.len());
                let piece = rng.random_range(0..n);
                if peers[i].1.set(piece, true) {
                    p.peer_has_piece(piece);
                }
            }
            3 if rng.random_bool(0.3) => {
                // Forgets the piece's requests too: later arrivals are Unexpected.
                let piece = rng.random_range(0..n);
                p.reset_piece(piece);
                outstanding.retain(|(_, b)| b.piece != piece);
            }
            3 => {
                let prio = [Priority::Skip, Priority::Low, Priority::Normal, Priority::High];
                p.set_priority(rng.random_range(0..n), prio[rng.random_range(0..4)]);
            }
            4 if !outstanding.is_empty() => {
                let (conn, block) = outstanding.swap_remove(rng.random_range(0..outstanding.len()));
                p.request_failed(conn, block);
                if rng.random_bool(0.5) {
                    // The peer sends it anyway.
                    if let BlockOutcome::Accepted { piece_complete, also_requested_from } =
                        p.late_block_received(conn, block)
                    {
                        outstanding.retain(|(c, b)| !(*b == block && also_requested_from.contains(c)));
                        if piece_complete {
                            p.hash_passed(block.piece);
                        }
                    }
                }
            }
            5..=7 if !outstanding.is_empty() => {
                let (conn, block) = outstanding.swap_remove(rng.random_range(0..outstanding.len()));
                if let BlockOutcome::Accepted { piece_complete, also_requested_from } = p.block_received(conn, block) {
                    outstanding.retain(|(c, b)| !(*b == block && also_requested_from.contains(c)));
                    if piece_complete {
                        if rng.random_bool(0.2) {
                            p.hash_failed(block.piece);
                        } else {
                            p.hash_passed(block.piece);
                        }
                    }
                }
            }
            _ if !peers.is_empty() => {
                let (conn, bf) = &peers[rng.random_range(0..peers.len())];
                let mut out = Vec::new();
                p.set_sequential(rng.random_bool(0.1));
                p.pick(*conn, bf, false, rng.random_range(1..8), &mut out);
                for b in out {
                    assert!(bf.get(b.piece), "picked a piece the peer lacks");
                    assert!(!outstanding.contains(&(*conn, b)), "same block twice to one peer");
                    assert_ne!(p.priority(b.piece), Priority::Skip);
                    outstanding.push((*conn, b));
                }
            }
            _ => {}
        }
        p.check_invariants();
        endgame_steps += u32::from(p.is_endgame());
        finished_steps += u32::from(p.is_finished());
    }
    // The run must visit the interesting states, or it proves little.
    assert!(endgame_steps > 100 && finished_steps < 10_000, "{endgame_steps} {finished_steps}");
}

/// 100,000 pieces, 200 peers with 90% each, 10,000 picks: checks correctness, prints timing.
#[test]
fn scales_to_large_torrents() {
    let (n, peers) = (100_000u32, 200u64);
    let started = std::time::Instant::now();
    let mut p = Picker::new(n, 16 * BLOCK_SIZE, u64::from(n) * 16 * u64::from(BLOCK_SIZE), 1);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let fields: Vec<Bitfield> = (0..peers)
        .map(|_| {
            let mut bf = Bitfield::new(n);
            for piece in 0..n {
                bf.set(piece, rng.random_range(0..10) != 0);
            }
            p.peer_bitfield(&bf);
            bf
        })
        .collect();
    let setup = started.elapsed();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let mut completed = 0;
    for _ in 0..10_000 {
        let i = rng.random_range(0..peers as usize);
        out.clear();
        p.pick(ConnId(i as u64), &fields[i], false, 16, &mut out);
        assert!(!out.is_empty());
        for &b in &out {
            assert!(fields[i].get(b.piece));
            match p.block_received(ConnId(i as u64), b) {
                BlockOutcome::Accepted { piece_complete: true, .. } => {
                    p.hash_passed(b.piece);
                    completed += 1;
                }
                BlockOutcome::Accepted { .. } => {}
                BlockOutcome::Unexpected => panic!("picked block was not accepted"),
            }
        }
    }
    let picks = started.elapsed();
    p.check_invariants();
    assert_eq!(p.wanted_remaining(), n - completed);
    assert!(completed >= 9_000, "picks complete whole pieces: {completed}");
    println!("setup (200 bitfields) {setup:?}, 10,000 picks {picks:?}, {completed} pieces done");
}

#[test]
fn distributed_copies_counts_the_rarest_piece_and_the_share_above_it() {
    let mut p = one_block_pieces(4, 9);
    assert_eq!(p.distributed_copies(), 0.0, "no peers");
    p.peer_bitfield(&bits(4, &[0, 1, 2]));
    assert_eq!(p.distributed_copies(), 0.75, "three of four pieces once, one missing");
    p.peer_bitfield(&bits(4, &[3]));
    assert_eq!(p.distributed_copies(), 1.0, "two partial peers make one full copy");
    p.peer_has_piece(0);
    assert_eq!(p.distributed_copies(), 1.25);
    p.peer_has_all();
    assert_eq!(p.distributed_copies(), 2.25, "a seed adds a whole copy");
    p.peer_gone(B, &bits(4, &[3]), false);
    assert_eq!(p.distributed_copies(), 1.75, "piece 3 is now the rarest, with only the seed");
    p.set_have(3);
    assert_eq!(p.distributed_copies(), 1.75, "our own pieces do not count");
    assert_eq!(Picker::new(0, BLOCK_SIZE, 0, 1).distributed_copies(), 0.0);
}
