//! The answering half of the [`Dht`]: replies to `ping`, `find_node`, `get_peers` and
//! `announce_peer`, and KRPC errors for everything else.
//!
//! BEP 33: a `get_peers` with `scrape=1` for a torrent we store peers of gets the `BFsd` and
//! `BFpe` filters too. They take 512 bytes, so such an answer carries only the querier's own
//! family of nodes (the mandatory list) and as many `values` as fit in [`MAX_SCRAPE_REPLY`].

use std::net::SocketAddr;

use super::krpc::{self, Body, Message, Method, Query, Response, Want};
use super::node::{compact_addr, Family, NodeId, NodeInfo};
use super::routing::K;
use super::Dht;
use super::DhtOutput;
use crate::types::Instant;

/// Largest scrape answer we send: what one UDP datagram carries on any IPv6 path without
/// fragmentation (the 1280-byte minimum MTU less 48 bytes of IPv6 and UDP headers), which also
/// fits any IPv4 path.
pub(super) const MAX_SCRAPE_REPLY: usize = 1232;

impl Dht {
    /// A query from `from`: rate-limited per source IP, then answered.
    pub(super) fn handle_query(&mut self, from: SocketAddr, tid: Vec<u8>, read_only: bool, q: Query, now: Instant) {
        if !self.incoming.allow(from.ip(), now) {
            return;
        }
        let family = Family::of(&from);
        self.table_mut(family).heard_query(&q.id, from, now);
        let reply = match q.method {
            Method::Ping => Ok(self.response()),
            Method::FindNode { target } => Ok(self.with_nodes(&target, q.want, family, now)),
            Method::GetPeers { info_hash, scrape } => {
                let max = self.config.max_values_per_reply;
                let values = self.peers.peers(&info_hash, family, max, &mut self.rng);
                let token = Some(self.tokens.issue(from.ip()));
                let filters = if scrape { self.peers.filters(&info_hash) } else { None };
                let want = if filters.is_some() { Want::default() } else { q.want };
                let (bloom_seeds, bloom_peers) = filters.unzip();
                let nodes = self.with_nodes(&NodeId::from(info_hash), want, family, now);
                Ok(Response { values, token, bloom_seeds, bloom_peers, ..nodes })
            }
            Method::AnnouncePeer { info_hash, port, implied_port, token, seed } => {
                if !self.tokens.verify(from.ip(), &token) {
                    Err((krpc::ERROR_PROTOCOL, "bad token"))
                } else {
                    let port = if implied_port { Some(from.port()) } else { port };
                    match port {
                        Some(port) if port != 0 => {
                            self.peers.announce(info_hash, SocketAddr::new(from.ip(), port), seed, now);
                            Ok(self.response())
                        }
                        _ => Err((krpc::ERROR_PROTOCOL, "invalid port")),
                    }
                }
            }
            Method::Unknown(_) => Err((krpc::ERROR_METHOD_UNKNOWN, "Method Unknown")),
        };
        match reply {
            Ok(r) => {
                let scrape = r.bloom_seeds.is_some() || r.bloom_peers.is_some();
                let msg = Message {
                    tid,
                    version: Some(self.config.version.clone()),
                    ip: Some(from),
                    read_only: false,
                    body: Body::Response(r),
                };
                let data = if scrape { encode_within(msg, MAX_SCRAPE_REPLY) } else { msg.encode() };
                self.outputs.push_back(DhtOutput::Send { to: from, data });
            }
            Err((code, text)) => self.send_error(from, tid, code, text),
        }
        // A querier we do not know may be worth a table slot: ping it, and it enters the
        // table if it answers. Read-only nodes (BEP 43) never do.
        let table = &self.tables[family.index()];
        if !read_only && table.get(&q.id).is_none() && table.has_room_for(&q.id, now) {
            self.queue_ping(NodeInfo { id: q.id, addr: from });
        }
    }

    /// An answer with only our id.
    fn response(&self) -> Response {
        Response { id: self.id, ..Default::default() }
    }

    /// An answer with our id and the K closest nodes to `target` in the families wanted
    /// (the querier's own family when it did not say).
    fn with_nodes(&self, target: &NodeId, want: Want, family: Family, now: Instant) -> Response {
        let want =
            if want == Want::default() { Want { v4: family == Family::V4, v6: family == Family::V6 } } else { want };
        let mut r = self.response();
        if want.v4 && self.config.ipv4 {
            r.nodes = self.tables[Family::V4.index()].closest(target, K, now);
        }
        if want.v6 && self.config.ipv6 {
            r.nodes6 = self.tables[Family::V6.index()].closest(target, K, now);
        }
        r
    }

    /// Sends KRPC error `code` with `text` in answer to transaction `tid`.
    pub(super) fn send_error(&mut self, to: SocketAddr, tid: Vec<u8>, code: i64, text: &str) {
        let msg = Message {
            tid,
            version: Some(self.config.version.clone()),
            ip: None,
            read_only: false,
            body: Body::Error { code, message: text.to_owned() },
        };
        self.outputs.push_back(DhtOutput::Send { to, data: msg.encode() });
    }
}

/// Encodes an answer, keeping only as many of its `values` as fit in `limit` bytes.
fn encode_within(mut msg: Message, limit: usize) -> Vec<u8> {
    let data = msg.encode();
    if data.len() <= limit {
        return data;
    }
    let Body::Response(r) = &mut msg.body else { return data };
    let values = std::mem::take(&mut r.values);
    // Each value costs its compact form and a length prefix ("6:" or "18:"); the list adds
    // its key and delimiters ("6:values", "l", "e").
    let per_value = values.first().map_or(1, |v| compact_addr(v).len() + 3);
    let room = limit.saturating_sub(msg.encode().len() + b"6:valuesle".len()) / per_value;
    if let Body::Response(r) = &mut msg.body {
        r.values = values.into_iter().take(room).collect();
    }
    msg.encode()
}
