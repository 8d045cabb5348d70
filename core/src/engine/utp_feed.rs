//! The engine's side of uTP: datagrams into the link, the link's inputs into the engine, and
//! the output queue filtered through the link (see `utp_link`).

use std::net::SocketAddr;

use super::utp_link::LinkInput;
use super::{Engine, Input, Output};
use crate::types::Instant;

impl Engine {
    /// A uTP datagram arrived on the DHT socket.
    pub(super) fn on_utp_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        if let Some(link) = &mut self.utp {
            link.handle_datagram(from, data, now);
        }
    }

    /// [`Engine::poll_output`] with uTP on: what the link says is handled as input
    /// first, outputs for uTP connections go to the link, and its datagrams go out last.
    pub(super) fn poll_output_utp(&mut self) -> Option<Output> {
        loop {
            let link = self.utp.as_mut()?;
            if let Some(input) = link.poll_input() {
                self.feed_utp(input);
                continue;
            }
            if let Some(o) = self.pop_output() {
                match self.utp.as_mut()?.intercept(o) {
                    Some(o) => return Some(o),
                    None => continue,
                }
            }
            return self.utp.as_mut()?.poll_output();
        }
    }

    fn feed_utp(&mut self, input: LinkInput) {
        let Some(now) = self.utp.as_ref().map(super::utp_link::UtpLink::now) else { return };
        match input {
            LinkInput::Connected(conn) => self.handle(Input::Connected(conn), now),
            LinkInput::Bytes(conn, data) => self.handle(Input::PeerBytes(conn, &data), now),
            LinkInput::Sent(conn, n) => self.handle(Input::Sent(conn, n), now),
            LinkInput::Closed(conn, reason) => self.handle(Input::Closed(conn, reason), now),
            LinkInput::FellBack(conn) => {
                let Some(&t) = self.conns.get(&conn) else { return };
                self.on_torrent(t, now, |torrent, cx| torrent.on_utp_dial_failed(conn, cx));
                self.after_input(Some(t), now);
            }
            LinkInput::Incoming(u, addr) => {
                let conn = self.accept(addr, now);
                if let Some(link) = &mut self.utp {
                    link.accepted(u, conn);
                }
            }
        }
    }
}
