//! The engine's side of Message Stream Encryption (MSE/PE, [`crate::mse`]): which connections
//! use it, their handshakes, and decrypting what they receive. What they send is encrypted by
//! the [`Outbox`](super::outbox::Outbox), which sees every byte in wire order.
//!
//! A torrent never sees any of it: its peer is handshaking (in plaintext, as far as it knows)
//! while the MSE handshake runs under it, and its BitTorrent handshake travels as the
//! initial payload.

use crate::mse::{self, MseHandshake, MseStep, Secrets};
use crate::types::{ConnId, Instant};

use super::close_reason::CloseReason;
use super::config::Encryption;
use super::link::{sniff, Link, LinkInfo, LinkState, Sniffed};
use super::output::{Output, PeerIo};
use super::{Engine, TorrentId};

impl Engine {
    /// A peer connected to us: with encryption on, its first bytes are looked at first.
    pub(super) fn link_incoming(&mut self, conn: ConnId, now: Instant) {
        if self.config.encryption.accepts_encrypted() {
            let info = LinkInfo { outgoing: false, overhead: 0, since: now };
            self.links.insert(conn, Link::new(LinkState::Sniffing(Vec::new()), info));
        }
    }

    /// Torrent `t` dialled `conn`: with encryption on, the dial is encrypted unless an
    /// encrypted dial of the address failed (and encryption is not forced). What the torrent
    /// sends is held until the MSE handshake is done.
    pub(super) fn link_dial(&mut self, t: TorrentId, conn: ConnId, now: Instant) {
        let Some(torrent) = self.torrents.get(&t) else { return };
        let encrypted = match self.config.encryption {
            Encryption::Disabled => false,
            Encryption::Enabled => torrent.dials_encrypted(conn),
            Encryption::Forced => true,
        };
        if encrypted {
            let info = LinkInfo { outgoing: true, overhead: 0, since: now };
            self.links.insert(conn, Link::new(LinkState::Dialing(torrent.info_hash), info));
            self.out.hold(conn);
        }
    }

    /// Our encrypted dial connected: the MSE handshake starts with our key.
    pub(super) fn start_initiator(&mut self, conn: ConnId, now: Instant) {
        let Some(link) = self.links.get_mut(&conn) else { return };
        let LinkState::Dialing(info_hash) = link.state else { return };
        let mut out = Vec::new();
        let secrets = Secrets::random(&mut self.rng);
        let hs = MseHandshake::initiator(info_hash, self.config.encryption_levels, secrets, &mut out);
        link.state = LinkState::Handshaking(Box::new(hs));
        link.info.overhead += out.len() as u64;
        link.info.since = now;
        self.out.push_raw(conn, out);
    }

    /// Bytes from a peer: decrypted, or run through its MSE handshake, on their way to
    /// [`Engine::deliver`]. Connections without encryption take the plain path untouched.
    pub(super) fn on_peer_data(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        match self.links.get_mut(&conn).map(|l| &mut l.state) {
            None => self.deliver(conn, data, now),
            Some(LinkState::Open(cipher)) if cipher.is_plaintext() => self.deliver(conn, data, now),
            Some(LinkState::Open(cipher)) => {
                // Decrypted into the engine's buffer: the input is borrowed.
                let mut buf = std::mem::take(&mut self.scratch);
                buf.clear();
                buf.extend_from_slice(data);
                cipher.apply(&mut buf);
                self.deliver(conn, &buf, now);
                self.scratch = buf;
            }
            Some(_) => self.on_handshake_bytes(conn, data, now),
        }
    }

    /// Bytes of a connection whose MSE handshake is not done (or not known to be needed).
    fn on_handshake_bytes(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        let Some(Link { state, mut info }) = self.links.remove(&conn) else { return };
        match state {
            LinkState::Sniffing(mut first) => {
                first.extend_from_slice(data);
                match sniff(&first) {
                    Sniffed::Unsure => {
                        self.links.insert(conn, Link::new(LinkState::Sniffing(first), info));
                    }
                    Sniffed::Plaintext if self.config.encryption.accepts_plaintext() => self.deliver(conn, &first, now),
                    Sniffed::Plaintext => self.encryption_failed(conn, false, CloseReason::EncryptionRequired, now),
                    Sniffed::Encrypted => {
                        let mut out = Vec::new();
                        let secrets = Secrets::random(&mut self.rng);
                        let hs = MseHandshake::responder(self.config.encryption_levels, secrets, &mut out);
                        info.overhead += out.len() as u64;
                        self.out.push_raw(conn, out);
                        self.step_handshake(conn, hs, info, &first, now);
                    }
                }
            }
            LinkState::Handshaking(hs) => self.step_handshake(conn, *hs, info, data, now),
            // Nothing arrives before the dial connects; an open link is not handled here.
            state @ (LinkState::Dialing(_) | LinkState::Open(_)) => {
                self.links.insert(conn, Link::new(state, info));
            }
        }
    }

    /// Runs `data` through a connection's MSE handshake; `info` is what its link keeps.
    fn step_handshake(&mut self, conn: ConnId, mut hs: MseHandshake, mut info: LinkInfo, data: &[u8], now: Instant) {
        // Our BitTorrent handshake, held since the dial connected, rides in the third message
        // (its bytes are the torrent's, not overhead).
        let room = hs.initial_payload_room();
        let mut initial = 0;
        if room > 0 {
            let held = self.out.take_held(conn, room);
            hs.add_initial_payload(&held);
            initial = mse::MAX_INITIAL_PAYLOAD - hs.initial_payload_room();
        }
        let mut out = Vec::new();
        let by_hash = &self.by_hash;
        let step = hs.handle(data, &mut out, |named| by_hash.keys().find(|ih| mse::req2(ih) == *named).copied());
        // The initial payload went out if the third message did.
        let sent_request = room > 0 && !matches!(&step, Ok(MseStep::Pending(h)) if h.initial_payload_room() > 0);
        let initial = if sent_request { initial } else { 0 };
        info.overhead += (out.len() - initial) as u64;
        self.out.push_raw(conn, out);
        match step {
            Ok(MseStep::Pending(hs)) => {
                self.links.insert(conn, Link::new(LinkState::Handshaking(hs), info));
            }
            Ok(MseStep::Done(est)) => {
                self.out.open(conn, est.send);
                self.links.insert(conn, Link::new(LinkState::Open(est.recv), info));
                if !est.payload.is_empty() {
                    self.deliver(conn, &est.payload, now);
                }
            }
            Err(e) => self.encryption_failed(conn, info.outgoing, e.into(), now),
        }
    }

    /// An MSE handshake failed, or a plaintext one came while encryption is forced. An
    /// incoming connection is closed; an outgoing one too, and with encryption enabled (not
    /// forced) its address is dialled again in plaintext.
    fn encryption_failed(&mut self, conn: ConnId, outgoing: bool, reason: CloseReason, now: Instant) {
        self.links.remove(&conn);
        match self.conns.get(&conn).copied().filter(|_| outgoing) {
            Some(t) => {
                let retry = self.config.encryption == Encryption::Enabled;
                self.on_torrent(t, now, |torrent, cx| torrent.encryption_failed(conn, reason, retry, cx));
                self.after_input(Some(t), now);
            }
            None => {
                self.take_pending(conn);
                self.out.push(Output::Peer(PeerIo::Close { conn, reason }));
            }
        }
    }

    /// The runtime reports `conn` closed: forgets its link. True if it was our encrypted dial
    /// still in its MSE handshake, which with encryption enabled is retried in plaintext (a
    /// client without encryption hangs up on the key it cannot read).
    pub(super) fn unlink_closed(&mut self, conn: ConnId) -> bool {
        self.out.unseal(conn);
        let link = self.links.remove(&conn);
        self.config.encryption == Encryption::Enabled
            && link.is_some_and(|l| l.info.outgoing && matches!(l.state, LinkState::Handshaking(_)))
    }

    /// Our encrypted dials whose MSE handshake has run past the handshake timeout (a peer that
    /// took the connection and never answered our key, as one without encryption waiting for
    /// a plaintext handshake does) fail: with encryption enabled their addresses are dialled
    /// again in plaintext, as after a close. Runs before the torrents' own timeout, which would
    /// close them on the same tick without a retry.
    pub(super) fn expire_handshakes(&mut self, now: Instant) {
        let timeout = self.config.handshake_timeout;
        let mut expired: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.info.outgoing && matches!(l.state, LinkState::Handshaking(_)))
            .filter(|(_, l)| now - l.info.since > timeout)
            .map(|(conn, _)| *conn)
            .collect();
        // The map's order is not the same from run to run; the engine's outputs must be.
        expired.sort_unstable();
        for conn in expired {
            self.encryption_failed(conn, true, CloseReason::HandshakeTimeout, now);
        }
    }

    /// Of `n` bytes the runtime reports sent on `conn`, those that were the torrent's (the
    /// MSE handshake's own come first).
    pub(super) fn sent_payload(&mut self, conn: ConnId, n: usize) -> usize {
        match self.links.get_mut(&conn) {
            Some(link) if link.info.overhead > 0 => {
                let ours = link.info.overhead.min(n as u64);
                link.info.overhead -= ours;
                n - ours as usize
            }
            _ => n,
        }
    }
}
