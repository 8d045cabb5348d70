//! The handshake machine, both roles.

use rand::{Rng, RngCore};

use super::cipher::Cipher;
use super::error::MseError;
use super::keys::{key_a, key_b, public_key, req1, req2, req3, shared_secret};
use super::keys::{KEY_LEN, PRIVATE_KEY_LEN};
use super::levels::{Levels, Selected};
use crate::types::InfoHash;

/// Most padding (PadA, PadB, PadC, PadD) either side may send.
pub const MAX_PAD: usize = 512;
/// Most initial payload (IA) we take: a BitTorrent handshake is 68 bytes, and a peer that
/// sends more than this before it knows the selected method is not following the protocol.
pub const MAX_INITIAL_PAYLOAD: usize = 1024;

/// The verification constant: eight zero bytes, encrypted, that prove both sides share keys.
const VC: [u8; 8] = [0; 8];

/// Most bytes a handshake holds before it is done: the longest legal exchange (key, padding,
/// hashes, header, padding, initial payload) and one read of payload after it.
const MAX_BUFFERED: usize = KEY_LEN + MAX_PAD + 20 + 20 + 14 + MAX_PAD + 2 + MAX_INITIAL_PAYLOAD + (64 << 10);

/// The randomness of one side of a handshake, drawn by the caller.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// Our Diffie-Hellman private key.
    pub private_key: [u8; PRIVATE_KEY_LEN],
    /// The padding sent after our public key (PadA or PadB), at most `MAX_PAD` bytes.
    pub pad: Vec<u8>,
}

impl Secrets {
    /// A private key and a padding of random length (0 to 512 bytes) from `rng`.
    pub fn random(rng: &mut impl RngCore) -> Self {
        let mut private_key = [0u8; PRIVATE_KEY_LEN];
        rng.fill_bytes(&mut private_key);
        let mut pad = vec![0u8; rng.random_range(0..=MAX_PAD)];
        rng.fill_bytes(&mut pad);
        Secrets { private_key, pad }
    }
}

/// An MSE handshake in progress, either role.
#[derive(Debug)]
pub struct MseHandshake {
    private_key: [u8; PRIVATE_KEY_LEN],
    allowed: Levels,
    role: Role,
    /// Received bytes not consumed yet; what is before `pos` is read (and decrypted).
    buf: Vec<u8>,
    pos: usize,
    phase: Phase,
}

/// What the side knows of the torrent.
#[derive(Debug)]
enum Role {
    /// We dialled, for this torrent, and send `initial` (the BitTorrent handshake) inside it.
    Initiator { skey: InfoHash, initial: Vec<u8> },
    /// We were dialled: the torrent is named by the stream.
    Responder,
}

/// Where the handshake is; the ciphers exist once the secret and the torrent are known.
#[derive(Debug)]
enum Phase {
    /// Waiting for the peer's public key.
    Key,
    /// Initiator: looking for the responder's encrypted VC after its key.
    FindVc { vc: [u8; 8], enc: Cipher, dec: Cipher },
    /// Initiator: reading `crypto_select` and `len(PadD)`.
    Select { enc: Cipher, dec: Cipher },
    /// Initiator: skipping PadD.
    PadD { enc: Cipher, dec: Cipher, selected: Selected, len: usize },
    /// Responder: looking for `HASH('req1', S)` after the initiator's key.
    FindReq1 { s: Box<[u8; KEY_LEN]> },
    /// Responder: reading `HASH('req2', SKEY) ^ HASH('req3', S)`.
    Skey { s: Box<[u8; KEY_LEN]> },
    /// Responder: reading VC, `crypto_provide` and `len(PadC)`.
    Header { skey: InfoHash, enc: Cipher, dec: Cipher },
    /// Responder: skipping PadC.
    PadC { skey: InfoHash, enc: Cipher, dec: Cipher, selected: Selected, len: usize },
    /// Responder: reading `len(IA)`.
    InitialLen { skey: InfoHash, enc: Cipher, dec: Cipher, selected: Selected },
    /// Responder: reading the initial payload.
    Initial { skey: InfoHash, enc: Cipher, dec: Cipher, selected: Selected, len: usize },
    /// Between phases (never seen outside `handle`).
    Moving,
}

/// What [`MseHandshake::handle`] came to.
#[derive(Debug)]
pub enum MseStep {
    /// More bytes are needed: the machine, handed back.
    Pending(Box<MseHandshake>),
    /// The handshake is done.
    Done(Established),
}

/// A finished handshake: the stream's ciphers and what arrived past the handshake.
#[derive(Debug)]
pub struct Established {
    /// The torrent (SKEY): the one we dialled for, or the one the initiator named.
    pub info_hash: InfoHash,
    /// The method the responder selected.
    pub selected: Selected,
    /// Encrypts what we send from now on (plaintext when that was selected).
    pub send: Cipher,
    /// Decrypts what we receive from now on (plaintext when that was selected).
    pub recv: Cipher,
    /// Payload bytes already received and decrypted: the initiator's initial payload and
    /// whatever followed the handshake.
    pub payload: Vec<u8>,
}

impl MseHandshake {
    /// We dial for `skey`, offering `allowed`; `out` receives our public key and padding.
    pub fn initiator(skey: InfoHash, allowed: Levels, secrets: Secrets, out: &mut Vec<u8>) -> Self {
        Self::start(Role::Initiator { skey, initial: Vec::new() }, allowed, secrets, out)
    }

    /// We were dialled and accept `allowed`; `out` receives our public key and padding.
    pub fn responder(allowed: Levels, secrets: Secrets, out: &mut Vec<u8>) -> Self {
        Self::start(Role::Responder, allowed, secrets, out)
    }

    fn start(role: Role, allowed: Levels, secrets: Secrets, out: &mut Vec<u8>) -> Self {
        out.extend_from_slice(&public_key(&secrets.private_key));
        out.extend_from_slice(&secrets.pad[..secrets.pad.len().min(MAX_PAD)]);
        MseHandshake { private_key: secrets.private_key, allowed, role, buf: Vec::new(), pos: 0, phase: Phase::Key }
    }

    /// How many more bytes of initial payload an initiator can take now: it goes out,
    /// encrypted, with the third message, once the responder's key is in (0 after that, and
    /// for a responder).
    pub fn initial_payload_room(&self) -> usize {
        match (&self.role, &self.phase) {
            (Role::Initiator { initial, .. }, Phase::Key) => MAX_INITIAL_PAYLOAD - initial.len(),
            _ => 0,
        }
    }

    /// Adds to an initiator's initial payload (the BitTorrent handshake); ignored beyond
    /// [`MseHandshake::initial_payload_room`].
    pub fn add_initial_payload(&mut self, payload: &[u8]) {
        if payload.len() <= self.initial_payload_room() {
            if let Role::Initiator { initial, .. } = &mut self.role {
                initial.extend_from_slice(payload);
            }
        }
    }

    /// Takes bytes from the peer; what to send back is appended to `out`. A responder asks
    /// `find` for the torrent whose [`req2`](super::req2) hash the initiator sent.
    pub fn handle(
        mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        find: impl FnOnce(&[u8; 20]) -> Option<InfoHash>,
    ) -> Result<MseStep, MseError> {
        if self.buf.len() - self.pos + data.len() > MAX_BUFFERED {
            return Err(MseError::TooMuchData);
        }
        self.buf.extend_from_slice(data);
        let mut find = Some(find);
        loop {
            let phase = std::mem::replace(&mut self.phase, Phase::Moving);
            match self.advance(phase, out, &mut find)? {
                Advance::Wait(phase) => {
                    self.phase = phase;
                    return Ok(MseStep::Pending(Box::new(self)));
                }
                Advance::Next(phase) => self.phase = phase,
                Advance::Done(est) => return Ok(MseStep::Done(est)),
            }
        }
    }

    /// The next `n` unread bytes, if they are all in, consumed.
    fn take(&mut self, n: usize) -> Option<&mut [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len())?;
        let start = std::mem::replace(&mut self.pos, end);
        Some(&mut self.buf[start..end])
    }

    /// The next `n` unread bytes decrypted by `dec`, if they are all in.
    fn take_decrypted<const N: usize>(&mut self, dec: &mut Cipher) -> Option<[u8; N]> {
        let bytes = self.take(N)?;
        dec.apply(bytes);
        bytes.try_into().ok()
    }

    /// Everything after the handshake, decrypted if the stream is encrypted.
    fn rest(&mut self, recv: &mut Cipher) -> Vec<u8> {
        let mut rest = self.buf.split_off(self.pos);
        recv.apply(&mut rest);
        rest
    }

    /// Runs one phase on the bytes in.
    fn advance(
        &mut self,
        phase: Phase,
        out: &mut Vec<u8>,
        find: &mut Option<impl FnOnce(&[u8; 20]) -> Option<InfoHash>>,
    ) -> Result<Advance, MseError> {
        Ok(match phase {
            Phase::Key => {
                let Some(theirs) = self.take(KEY_LEN) else { return Ok(Advance::Wait(Phase::Key)) };
                let theirs: [u8; KEY_LEN] = (&*theirs).try_into().expect("took KEY_LEN bytes");
                let s = Box::new(shared_secret(&self.private_key, &theirs)?);
                match &mut self.role {
                    Role::Initiator { skey, initial } => {
                        let (enc, dec) = (Cipher::rc4(&key_a(&s, skey)), Cipher::rc4(&key_b(&s, skey)));
                        // What VC looks like on the wire: the first bytes of the peer's stream.
                        let mut vc = VC;
                        Cipher::rc4(&key_b(&s, skey)).apply(&mut vc);
                        let initial = std::mem::take(initial);
                        Advance::Next(Phase::FindVc { enc: self.send_request(&s, enc, initial, out), dec, vc })
                    }
                    Role::Responder => Advance::Next(Phase::FindReq1 { s }),
                }
            }
            Phase::FindVc { vc, enc, mut dec } => match self.find(&vc, MseError::NoVc)? {
                None => Advance::Wait(Phase::FindVc { vc, enc, dec }),
                Some(at) => {
                    self.pos = at;
                    let _: [u8; 8] = self.take_decrypted(&mut dec).expect("the VC was found there");
                    Advance::Next(Phase::Select { enc, dec })
                }
            },
            Phase::Select { enc, mut dec } => {
                let Some(head) = self.take_decrypted::<6>(&mut dec) else {
                    return Ok(Advance::Wait(Phase::Select { enc, dec }));
                };
                let bits = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                let selected = [Selected::Rc4, Selected::Plaintext]
                    .into_iter()
                    .find(|s| s.bit() == bits && bits & self.allowed.bits() != 0)
                    .ok_or(MseError::BadSelect(bits))?;
                let len = pad_len([head[4], head[5]])?;
                Advance::Next(Phase::PadD { enc, dec, selected, len })
            }
            Phase::PadD { enc, mut dec, selected, len } => {
                let Some(pad) = self.take(len) else {
                    return Ok(Advance::Wait(Phase::PadD { enc, dec, selected, len }));
                };
                dec.apply(pad);
                let Role::Initiator { skey, .. } = self.role else { unreachable!("PadD is read by an initiator") };
                self.done(skey, selected, enc, dec, Vec::new())
            }
            Phase::FindReq1 { s } => match self.find(&req1(&s), MseError::NoReq1)? {
                None => Advance::Wait(Phase::FindReq1 { s }),
                Some(at) => {
                    self.pos = at + 20;
                    Advance::Next(Phase::Skey { s })
                }
            },
            Phase::Skey { s } => {
                let Some(hidden) = self.take(20) else { return Ok(Advance::Wait(Phase::Skey { s })) };
                let mut named = req3(&s);
                named.iter_mut().zip(hidden.iter()).for_each(|(a, b)| *a ^= b);
                let find = find.take().ok_or(MseError::UnknownTorrent)?;
                let skey = find(&named).filter(|k| req2(k) == named).ok_or(MseError::UnknownTorrent)?;
                let (enc, dec) = (Cipher::rc4(&key_b(&s, &skey)), Cipher::rc4(&key_a(&s, &skey)));
                Advance::Next(Phase::Header { skey, enc, dec })
            }
            Phase::Header { skey, enc, mut dec } => {
                let Some(head) = self.take_decrypted::<14>(&mut dec) else {
                    return Ok(Advance::Wait(Phase::Header { skey, enc, dec }));
                };
                if head[..8] != VC {
                    return Err(MseError::BadVc);
                }
                let provided = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
                let selected = self.allowed.select(provided).ok_or(MseError::NoCommonMethod(provided))?;
                let len = pad_len([head[12], head[13]])?;
                Advance::Next(Phase::PadC { skey, enc, dec, selected, len })
            }
            Phase::PadC { skey, enc, mut dec, selected, len } => {
                let Some(pad) = self.take(len) else {
                    return Ok(Advance::Wait(Phase::PadC { skey, enc, dec, selected, len }));
                };
                dec.apply(pad);
                Advance::Next(Phase::InitialLen { skey, enc, dec, selected })
            }
            Phase::InitialLen { skey, enc, mut dec, selected } => {
                let Some(len) = self.take_decrypted::<2>(&mut dec) else {
                    return Ok(Advance::Wait(Phase::InitialLen { skey, enc, dec, selected }));
                };
                let len = u16::from_be_bytes(len);
                if usize::from(len) > MAX_INITIAL_PAYLOAD {
                    return Err(MseError::PayloadTooLong(len));
                }
                Advance::Next(Phase::Initial { skey, enc, dec, selected, len: usize::from(len) })
            }
            Phase::Initial { skey, enc, mut dec, selected, len } => {
                let Some(initial) = self.take(len) else {
                    return Ok(Advance::Wait(Phase::Initial { skey, enc, dec, selected, len }));
                };
                dec.apply(initial);
                let initial = initial.to_vec();
                let mut enc = enc;
                let mut reply = [0u8; 14];
                reply[8..12].copy_from_slice(&selected.bit().to_be_bytes());
                enc.apply(&mut reply);
                out.extend_from_slice(&reply);
                self.done(skey, selected, enc, dec, initial)
            }
            Phase::Moving => unreachable!("a phase is always put back"),
        })
    }
}

/// What one phase came to.
enum Advance {
    /// Needs more bytes; stays in this phase.
    Wait(Phase),
    /// Go on with the next phase.
    Next(Phase),
    /// Finished.
    Done(Established),
}

/// A padding length from the wire, at most `MAX_PAD`.
fn pad_len(be: [u8; 2]) -> Result<usize, MseError> {
    let len = u16::from_be_bytes(be);
    if usize::from(len) > MAX_PAD {
        return Err(MseError::PadTooLong(len));
    }
    Ok(usize::from(len))
}

impl MseHandshake {
    /// The initiator's third message: the hashes that name the torrent, then, encrypted, VC,
    /// what we provide, no PadC, and the initial payload. Returns the cipher, past it.
    fn send_request(&self, s: &[u8; KEY_LEN], mut enc: Cipher, initial: Vec<u8>, out: &mut Vec<u8>) -> Cipher {
        let Role::Initiator { skey, .. } = &self.role else { unreachable!("only an initiator requests") };
        out.extend_from_slice(&req1(s));
        let mut named = req2(skey);
        named.iter_mut().zip(req3(s)).for_each(|(a, b)| *a ^= b);
        out.extend_from_slice(&named);
        let start = out.len();
        out.extend_from_slice(&VC);
        out.extend_from_slice(&self.allowed.bits().to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        // `add_initial_payload` keeps it within MAX_INITIAL_PAYLOAD, far below u16::MAX.
        out.extend_from_slice(&(initial.len() as u16).to_be_bytes());
        out.extend_from_slice(&initial);
        enc.apply(&mut out[start..]);
        enc
    }

    /// Where `needle` starts in the bytes after the peer's key and padding, if it is in;
    /// `missing` once the padding could not hide it any more.
    fn find(&self, needle: &[u8], missing: MseError) -> Result<Option<usize>, MseError> {
        let window = &self.buf[KEY_LEN..self.buf.len().min(KEY_LEN + MAX_PAD + needle.len())];
        match window.windows(needle.len()).position(|w| w == needle) {
            Some(at) => Ok(Some(KEY_LEN + at)),
            None if window.len() == MAX_PAD + needle.len() => Err(missing),
            None => Ok(None),
        }
    }

    /// The handshake is over: the ciphers stay on for an RC4 stream and go for plaintext.
    fn done(
        &mut self,
        info_hash: InfoHash,
        selected: Selected,
        send: Cipher,
        recv: Cipher,
        initial: Vec<u8>,
    ) -> Advance {
        let (mut send, mut recv) = (send, recv);
        if selected == Selected::Plaintext {
            (send, recv) = (Cipher::plaintext(), Cipher::plaintext());
        }
        let mut payload = initial;
        payload.extend_from_slice(&self.rest(&mut recv));
        Advance::Done(Established { info_hash, selected, send, recv, payload })
    }
}
