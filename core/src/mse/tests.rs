use data_encoding::HEXLOWER;

use super::keys::{hash, key_a, key_b, public_key, req1, req2, req3, shared_secret};
use super::*;
use crate::types::InfoHash;

fn hex(s: &str) -> Vec<u8> {
    HEXLOWER.decode(s.as_bytes()).unwrap()
}

const SKEY: InfoHash = InfoHash([0xaa; 20]);

fn private(first: u8) -> [u8; PRIVATE_KEY_LEN] {
    std::array::from_fn(|i| first + i as u8)
}

fn secrets(first: u8, pad: usize) -> Secrets {
    Secrets { private_key: private(first), pad: vec![0x5a; pad] }
}

/// Values computed independently (Python: pow, hashlib, a textbook RC4).
#[test]
fn key_derivation_known_answer() {
    let (xa, xb) = (private(1), private(21));
    let ya = public_key(&xa);
    assert_eq!(
        ya.to_vec(),
        hex(concat!(
            "96e112dab29e8c5272accb9b17b26887ce54a144a4e3b697c7d159b7a817e556b0918db2b4c658e02a87f7e5fb14b18a",
            "553e084cbf3dad2d30f16596ccb982d406258c61b30c5c1dae2ddc60bdbd48d79896312aad63238c39e1a633821eb693"
        ))
    );
    let s = shared_secret(&xa, &public_key(&xb)).unwrap();
    assert_eq!(s, shared_secret(&xb, &ya).unwrap());
    assert_eq!(hash(&[&s]).to_vec(), hex("12ba167261b1d285979464feaaf403c26052c6b8"));
    assert_eq!(req1(&s).to_vec(), hex("83c8d8a3d91a5bf40d723666c4258731c8427ccb"));
    assert_eq!(req2(&SKEY).to_vec(), hex("c9b0599dfa950cfbde978efc6aa0588f510fa315"));
    assert_eq!(key_a(&s, &SKEY).to_vec(), hex("31d9009cff2c45e3be00d3d9ec6e4b32d0f06816"));
    assert_eq!(key_b(&s, &SKEY).to_vec(), hex("84d32166978da3995739ffd976056af14dbb048e"));
    // Keystream after the 1024 dropped bytes.
    let mut vc = [0u8; 8];
    Cipher::rc4(&key_a(&s, &SKEY)).apply(&mut vc);
    assert_eq!(vc.to_vec(), hex("0327b6d211c82d49"));
    let mut vc = [0u8; 8];
    Cipher::rc4(&key_b(&s, &SKEY)).apply(&mut vc);
    assert_eq!(vc.to_vec(), hex("06d0d8359370f45e"));
}

#[test]
fn trivial_public_keys_are_refused() {
    let mut p_minus_1 = [0u8; KEY_LEN];
    p_minus_1.copy_from_slice(&hex(concat!(
        "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404dd",
        "ef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a63a36210000000000090562"
    )));
    let mut one = [0u8; KEY_LEN];
    one[KEY_LEN - 1] = 1;
    for bad in [[0u8; KEY_LEN], one, p_minus_1, [0xff; KEY_LEN]] {
        assert_eq!(shared_secret(&private(1), &bad), Err(MseError::BadPublicKey));
    }
}

/// A machine, or what it came to.
enum Side {
    Running(Box<MseHandshake>),
    Done(Established),
}

/// Runs an initiator offering `offer` (with initial payload `ia`) against a responder that
/// allows `allow`, delivering bytes `chunk` at a time.
fn run(
    offer: Levels,
    allow: Levels,
    pads: (usize, usize),
    ia: &[u8],
    chunk: usize,
) -> Result<(Established, Established), MseError> {
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    let mut a = MseHandshake::initiator(SKEY, offer, secrets(1, pads.0), &mut to_b);
    a.add_initial_payload(ia);
    let b = MseHandshake::responder(allow, secrets(21, pads.1), &mut to_a);
    let (mut a, mut b) = (Side::Running(Box::new(a)), Side::Running(Box::new(b)));
    for _ in 0..100_000 {
        if let (Side::Done(_), Side::Done(_)) = (&a, &b) {
            break;
        }
        if let Side::Running(m) = a {
            let n = to_a.len().min(chunk);
            let data: Vec<u8> = to_a.drain(..n).collect();
            a = match m.handle(&data, &mut to_b, |_| None)? {
                MseStep::Pending(m) => Side::Running(m),
                MseStep::Done(e) => Side::Done(e),
            };
        }
        if let Side::Running(m) = b {
            let n = to_b.len().min(chunk);
            let data: Vec<u8> = to_b.drain(..n).collect();
            let find = |h: &[u8; 20]| (*h == req2(&SKEY)).then_some(SKEY);
            b = match m.handle(&data, &mut to_a, find)? {
                MseStep::Pending(m) => Side::Running(m),
                MseStep::Done(e) => Side::Done(e),
            };
        }
    }
    match (a, b) {
        (Side::Done(a), Side::Done(b)) => Ok((a, b)),
        _ => panic!("the handshake never finished"),
    }
}

/// Bytes the two sides send each other after the handshake arrive as sent.
fn exchange(a: &mut Established, b: &mut Established) {
    one_way(a, b);
    one_way(b, a);
}

fn one_way(from: &mut Established, to: &mut Established) {
    {
        let msg: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = msg.clone();
        from.send.apply(&mut wire);
        assert_eq!(wire == msg, from.selected == Selected::Plaintext);
        // In two pieces: the stream continues across calls.
        let (x, y) = wire.split_at_mut(1234);
        to.recv.apply(x);
        to.recv.apply(y);
        assert_eq!(wire, msg);
    }
}

#[test]
fn both_roles_agree_on_rc4_and_carry_payload() {
    let ia = b"\x13BitTorrent protocol and the rest of a handshake";
    for chunk in [1, 7, 100, 4096] {
        let (mut a, mut b) = run(Levels::Rc4, Levels::Both, (17, 300), ia, chunk).unwrap();
        assert_eq!((a.selected, b.selected), (Selected::Rc4, Selected::Rc4));
        assert_eq!((a.info_hash, b.info_hash), (SKEY, SKEY));
        assert_eq!(b.payload, ia);
        assert!(a.payload.is_empty());
        exchange(&mut a, &mut b);
    }
}

#[test]
fn plaintext_is_selected_when_one_side_wants_only_that_or_both_offer_both() {
    for (offer, allow) in
        [(Levels::Plaintext, Levels::Both), (Levels::Both, Levels::Plaintext), (Levels::Both, Levels::Both)]
    {
        let (mut a, mut b) = run(offer, allow, (0, 0), b"hello", 50).unwrap();
        assert_eq!((a.selected, b.selected), (Selected::Plaintext, Selected::Plaintext));
        assert!(a.send.is_plaintext() && b.recv.is_plaintext());
        assert_eq!(b.payload, b"hello");
        exchange(&mut a, &mut b);
    }
    assert_eq!(run(Levels::Rc4, Levels::Plaintext, (0, 0), b"", 50).unwrap_err(), MseError::NoCommonMethod(2));
}

#[test]
fn longest_padding_is_found() {
    let (mut a, mut b) = run(Levels::Rc4, Levels::Rc4, (MAX_PAD, MAX_PAD), &[9; MAX_INITIAL_PAYLOAD], 33).unwrap();
    assert_eq!(b.payload, [9; MAX_INITIAL_PAYLOAD]);
    exchange(&mut a, &mut b);
    // Longer padding is cut to the longest the peer searches.
    assert!(run(Levels::Rc4, Levels::Rc4, (MAX_PAD + 100, MAX_PAD + 1), b"", 64).is_ok());
}

/// The payload after the handshake, in the same read, comes out decrypted.
#[test]
fn bytes_after_the_handshake_are_handed_over() {
    let (mut to_b, mut to_a) = (Vec::new(), Vec::new());
    let a = MseHandshake::initiator(SKEY, Levels::Both, secrets(1, 10), &mut to_b);
    let b = MseHandshake::responder(Levels::Both, secrets(21, 10), &mut to_a);
    let MseStep::Pending(b) = b.handle(&to_b, &mut to_a, |_| None).unwrap() else { panic!() };
    to_b.clear();
    let MseStep::Pending(a) = a.handle(&to_a, &mut to_b, |_| None).unwrap() else { panic!() };
    to_a.clear();
    let MseStep::Done(mut eb) = b.handle(&to_b, &mut to_a, |_| Some(SKEY)).unwrap() else { panic!() };
    let mut more = b"after".to_vec();
    eb.send.apply(&mut more);
    to_a.extend_from_slice(&more);
    let MseStep::Done(ea) = a.handle(&to_a, &mut Vec::new(), |_| None).unwrap() else { panic!() };
    assert_eq!(ea.payload, b"after");
}

/// Feeds `data` to a fresh responder after the given initiator key.
fn respond(data: &[u8]) -> Result<MseStep, MseError> {
    let b = MseHandshake::responder(Levels::Both, secrets(21, 0), &mut Vec::new());
    b.handle(data, &mut Vec::new(), |h| (*h == req2(&SKEY)).then_some(SKEY))
}

/// The initiator's third message with the given fields, keyed for `respond`'s responder.
fn request(provide: u32, pad_c: u16, ia_len: u16, body: &[u8], skey: InfoHash) -> Vec<u8> {
    let xa = private(1);
    let s = shared_secret(&xa, &public_key(&private(21))).unwrap();
    let mut out = public_key(&xa).to_vec();
    out.extend_from_slice(&req1(&s));
    let mut named = req2(&skey);
    named.iter_mut().zip(req3(&s)).for_each(|(a, b)| *a ^= b);
    out.extend_from_slice(&named);
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&provide.to_be_bytes());
    out.extend_from_slice(&pad_c.to_be_bytes());
    out.extend_from_slice(&vec![0; usize::from(pad_c).min(600)]);
    out.extend_from_slice(&ia_len.to_be_bytes());
    out.extend_from_slice(body);
    Cipher::rc4(&key_a(&s, &skey)).apply(&mut out[start..]);
    out
}

#[test]
fn hostile_responder_input_is_refused() {
    assert!(matches!(respond(&request(3, 0, 0, b"", SKEY)), Ok(MseStep::Done(_))));
    assert_eq!(respond(&request(3, 513, 0, b"", SKEY)).unwrap_err(), MseError::PadTooLong(513));
    assert_eq!(respond(&request(3, 0, 1025, b"", SKEY)).unwrap_err(), MseError::PayloadTooLong(1025));
    assert_eq!(respond(&request(4, 0, 0, b"", SKEY)).unwrap_err(), MseError::NoCommonMethod(4));
    assert_eq!(respond(&request(3, 0, 0, b"", InfoHash([1; 20]))).unwrap_err(), MseError::UnknownTorrent);
    // Garbage instead of the hashes: no req1 within the padding's reach.
    let mut garbage = public_key(&private(1)).to_vec();
    garbage.extend((0..600u32).map(|i| (i * 31 + 7) as u8));
    assert_eq!(respond(&garbage).unwrap_err(), MseError::NoReq1);
    // A wrong VC: the encrypted part corrupted.
    let mut bad = request(3, 0, 0, b"", SKEY);
    bad[KEY_LEN + 40] ^= 1;
    assert_eq!(respond(&bad).unwrap_err(), MseError::BadVc);
    // Truncated anywhere: waits for more, never fails or panics.
    let full = request(3, 10, 5, b"hello", SKEY);
    for cut in 0..full.len() {
        assert!(matches!(respond(&full[..cut]), Ok(MseStep::Pending(_))), "cut at {cut}");
    }
    // An endless stream before the handshake completes is refused.
    let flood = request(3, 0, 5, b"", SKEY);
    let MseStep::Pending(b) = respond(&flood).unwrap() else { panic!() };
    assert_eq!(b.handle(&vec![0; 1 << 20], &mut Vec::new(), |_| None).unwrap_err(), MseError::TooMuchData);
}

#[test]
fn hostile_initiator_input_is_refused() {
    let a = || MseHandshake::initiator(SKEY, Levels::Rc4, secrets(1, 0), &mut Vec::new());
    let mut garbage = public_key(&private(21)).to_vec();
    garbage.extend((0..600u32).map(|i| (i * 31 + 7) as u8));
    assert_eq!(a().handle(&garbage, &mut Vec::new(), |_| None).unwrap_err(), MseError::NoVc);
    // A select of a method not offered.
    let s = shared_secret(&private(1), &public_key(&private(21))).unwrap();
    let mut reply = public_key(&private(21)).to_vec();
    let mut enc = [0u8; 14];
    enc[11] = 1;
    Cipher::rc4(&key_b(&s, &SKEY)).apply(&mut enc);
    reply.extend_from_slice(&enc);
    assert_eq!(a().handle(&reply, &mut Vec::new(), |_| None).unwrap_err(), MseError::BadSelect(1));
    assert_eq!(a().handle(&[0; KEY_LEN], &mut Vec::new(), |_| None).unwrap_err(), MseError::BadPublicKey);
}

/// The responder's reply to `hostile_initiator_input_is_refused`'s initiator: its key, then
/// the encrypted VC, `crypto_select`, `len(PadD)`, PadD and `body`.
fn reply(select: u32, pad_d: u16, body: &[u8]) -> Vec<u8> {
    let s = shared_secret(&private(21), &public_key(&private(1))).unwrap();
    let mut out = public_key(&private(21)).to_vec();
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&select.to_be_bytes());
    out.extend_from_slice(&pad_d.to_be_bytes());
    out.extend_from_slice(&vec![0; usize::from(pad_d)]);
    out.extend_from_slice(body);
    Cipher::rc4(&key_b(&s, &SKEY)).apply(&mut out[start..]);
    out
}

/// The initiator's side of what the responder's tests check: the longest PadD is read and one
/// byte more refused, a reply cut anywhere only waits, and an endless one is refused.
#[test]
fn an_initiator_takes_the_longest_pad_d_and_waits_on_truncated_replies() {
    let a = || MseHandshake::initiator(SKEY, Levels::Rc4, secrets(1, 0), &mut Vec::new());
    let feed = |data: &[u8]| a().handle(data, &mut Vec::new(), |_| None);
    let Ok(MseStep::Done(est)) = feed(&reply(2, MAX_PAD as u16, b"after")) else { panic!("longest PadD") };
    assert_eq!((est.selected, est.payload.as_slice()), (Selected::Rc4, &b"after"[..]));
    assert_eq!(feed(&reply(2, MAX_PAD as u16 + 1, b"")).unwrap_err(), MseError::PadTooLong(513));
    let full = reply(2, 10, b"");
    for cut in 0..full.len() {
        assert!(matches!(feed(&full[..cut]), Ok(MseStep::Pending(_))), "cut at {cut}");
    }
    // An endless stream after the key is refused before it is held.
    let MseStep::Pending(m) = feed(&full[..KEY_LEN]).unwrap() else { panic!() };
    assert_eq!(m.handle(&vec![0; 1 << 20], &mut Vec::new(), |_| None).unwrap_err(), MseError::TooMuchData);
}

#[test]
fn a_responder_takes_the_longest_pad_c() {
    let Ok(MseStep::Done(est)) = respond(&request(3, MAX_PAD as u16, 5, b"hello", SKEY)) else { panic!() };
    assert_eq!(est.payload, b"hello");
}

#[test]
fn random_secrets_stay_in_bounds() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..200 {
        assert!(Secrets::random(&mut rng).pad.len() <= MAX_PAD);
    }
}
