//! The KRPC message codec (BEP 5, with BEP 32 `nodes6`/`want`, BEP 33 `scrape`/`seed` and
//! its filters, BEP 42 `ip` and BEP 43 `ro`).
//!
//! A KRPC message is one bencoded dictionary per UDP datagram: `t` (transaction id), `y` (`q`
//! query, `r` response, `e` error) and the body. Responses do not name the query they answer, so
//! [`Response`] carries every field any of our four queries can get back; the caller knows
//! which query the transaction id belongs to.
//!
//! Decoding is strict and bounded: datagrams over [`MAX_DATAGRAM_LEN`] are refused, the bytes
//! pass [`crate::bencode::check`] (nesting limit [`MAX_DEPTH`]) before `bt_bencode` sees them,
//! compact node strings must be whole entries, and every list is capped.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bt_bencode::{ByteString, Value};

use super::bloom::ScrapeBloom;
use super::node::{compact_addr, decode_nodes, encode_nodes, parse_compact_addr, Family, NodeId, NodeInfo};
use crate::bencode::{self, BencodeError};
use crate::types::InfoHash;

/// The largest datagram we decode; real KRPC messages stay well under 1500 bytes.
pub const MAX_DATAGRAM_LEN: usize = 8 * 1024;
/// Deepest nesting accepted; KRPC needs three levels (message, arguments, `values` list).
pub const MAX_DEPTH: usize = 8;
/// Longest transaction id we echo back.
pub const MAX_TID_LEN: usize = 32;
/// Longest token we keep from a `get_peers` answer.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most peers read from one `values` list.
pub const MAX_VALUES: usize = 256;
/// Most nodes read from one `nodes` or `nodes6` string.
pub const MAX_NODES: usize = 64;
/// Longest error text kept.
const MAX_ERROR_TEXT: usize = 256;

/// KRPC error 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// Why a datagram is not a usable KRPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// The datagram is larger than [`MAX_DATAGRAM_LEN`].
    #[error("datagram of {0} bytes is too large for KRPC")]
    TooLarge(usize),
    /// The bytes are not one well-formed bencoded value.
    #[error("not bencode: {0}")]
    Bencode(#[from] BencodeError),
    /// Bencode, but not a KRPC message we can read.
    #[error("malformed KRPC message: {0}")]
    Malformed(&'static str),
    /// A query whose arguments are wrong; the sender deserves a 203 error with this `tid`.
    #[error("invalid query: {reason}")]
    BadQuery {
        /// The query's transaction id, to answer with.
        tid: Vec<u8>,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction id chosen by the querier and echoed in the answer.
    pub tid: Vec<u8>,
    /// The sender's client version (`v`), if it sent one.
    pub version: Option<Vec<u8>>,
    /// BEP 42: the address the responder saw the querier at (`ip`).
    pub ip: Option<SocketAddr>,
    /// BEP 43: the querier does not answer queries and must not enter routing tables.
    pub read_only: bool,
    /// Query, response or error.
    pub body: Body,
}

/// The three kinds of KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// `y = q`.
    Query(Query),
    /// `y = r`.
    Response(Response),
    /// `y = e`: a numeric code and a text.
    Error {
        /// One of the `ERROR_*` codes (others are possible).
        code: i64,
        /// Human-readable text.
        message: String,
    },
}

/// A query and the querier's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The querier's node id.
    pub id: NodeId,
    /// BEP 32 `want`: which node families the querier wants back (empty means its own family).
    pub want: Want,
    /// The method and its arguments.
    pub method: Method,
}

/// BEP 32 `want` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Want {
    /// `n4`: IPv4 nodes in `nodes`.
    pub v4: bool,
    /// `n6`: IPv6 nodes in `nodes6`.
    pub v6: bool,
}

/// The four BEP 5 queries, plus anything else by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `ping`.
    Ping,
    /// `find_node`: the nodes closest to `target`.
    FindNode {
        /// The id looked for.
        target: NodeId,
    },
    /// `get_peers`: peers for `info_hash`, or the closest nodes.
    GetPeers {
        /// The torrent.
        info_hash: InfoHash,
        /// BEP 33 `scrape=1`: also send the seed and peer filters of the stored peers.
        scrape: bool,
    },
    /// `announce_peer`: the querier downloads `info_hash`.
    AnnouncePeer {
        /// The torrent.
        info_hash: InfoHash,
        /// The peer port, or `None` with `implied_port` when the UDP source port is meant.
        port: Option<u16>,
        /// Use the query's source port as the peer port.
        implied_port: bool,
        /// The token the announcee handed out in its `get_peers` answer.
        token: Vec<u8>,
        /// BEP 33 `seed=1`: the announcer has the whole torrent.
        seed: bool,
    },
    /// A method we do not know (answered with error 204).
    Unknown(Vec<u8>),
}

impl Method {
    /// The method's name on the wire.
    pub fn name(&self) -> &[u8] {
        match self {
            Method::Ping => b"ping",
            Method::FindNode { .. } => b"find_node",
            Method::GetPeers { .. } => b"get_peers",
            Method::AnnouncePeer { .. } => b"announce_peer",
            Method::Unknown(name) => name,
        }
    }
}

/// A response; which fields are set depends on the query it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The responder's node id.
    pub id: NodeId,
    /// IPv4 nodes close to the target (`nodes`).
    pub nodes: Vec<NodeInfo>,
    /// IPv6 nodes close to the target (`nodes6`).
    pub nodes6: Vec<NodeInfo>,
    /// Peers for the info-hash (`values`).
    pub values: Vec<SocketAddr>,
    /// Token for a later `announce_peer` (`get_peers` answers only).
    pub token: Option<Vec<u8>>,
    /// BEP 33 `BFsd`: the filter of the stored seeds (scrape answers only; `None` when absent
    /// or not 256 bytes).
    pub bloom_seeds: Option<ScrapeBloom>,
    /// BEP 33 `BFpe`: the filter of the stored non-seeds, like `bloom_seeds`.
    pub bloom_peers: Option<ScrapeBloom>,
}

impl Message {
    /// The bencoded datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut top: BTreeMap<ByteString, Value> = BTreeMap::new();
        top.insert("t".into(), bytes(&self.tid));
        if let Some(v) = &self.version {
            top.insert("v".into(), bytes(v));
        }
        if let Some(ip) = &self.ip {
            top.insert("ip".into(), bytes(&compact_addr(ip)));
        }
        if self.read_only {
            top.insert("ro".into(), Value::from(1u8));
        }
        match &self.body {
            Body::Query(q) => {
                top.insert("y".into(), bytes(b"q"));
                top.insert("q".into(), bytes(q.method.name()));
                top.insert("a".into(), Value::Dict(query_arguments(q)));
            }
            Body::Response(r) => {
                top.insert("y".into(), bytes(b"r"));
                top.insert("r".into(), Value::Dict(response_fields(r)));
            }
            Body::Error { code, message } => {
                top.insert("y".into(), bytes(b"e"));
                top.insert("e".into(), Value::List(vec![Value::from(*code), bytes(message.as_bytes())]));
            }
        }
        // Invariant: a tree of byte strings, integers, lists and byte-keyed dicts always encodes.
        bt_bencode::to_vec(&Value::Dict(top)).expect("bencoding a Value tree cannot fail")
    }

    /// Decodes one datagram, strictly and within the limits above.
    pub fn decode(data: &[u8]) -> Result<Message, KrpcError> {
        if data.len() > MAX_DATAGRAM_LEN {
            return Err(KrpcError::TooLarge(data.len()));
        }
        bencode::check(data, MAX_DEPTH)?;
        let value: Value = bt_bencode::from_slice(data).map_err(|_| KrpcError::Malformed("undecodable bencode"))?;
        let top = value.as_dict().ok_or(KrpcError::Malformed("not a dictionary"))?;
        let tid = byte_field(top, b"t").ok_or(KrpcError::Malformed("no transaction id"))?;
        if tid.len() > MAX_TID_LEN {
            return Err(KrpcError::Malformed("transaction id too long"));
        }
        let tid = tid.to_vec();
        let version = byte_field(top, b"v").map(|v| v[..v.len().min(16)].to_vec());
        let ip = byte_field(top, b"ip").and_then(parse_compact_addr);
        let read_only = top.get(b"ro".as_slice()).and_then(Value::as_u64) == Some(1);
        let body = match byte_field(top, b"y") {
            Some(b"q") => Body::Query(decode_query(top, &tid)?),
            Some(b"r") => Body::Response(decode_response(top)?),
            Some(b"e") => decode_error(top)?,
            _ => return Err(KrpcError::Malformed("unknown message type")),
        };
        Ok(Message { tid, version, ip, read_only, body })
    }
}

/// A byte-string value.
fn bytes(b: &[u8]) -> Value {
    Value::ByteStr(ByteString::from(b))
}

fn query_arguments(q: &Query) -> BTreeMap<ByteString, Value> {
    let mut a: BTreeMap<ByteString, Value> = BTreeMap::new();
    a.insert("id".into(), bytes(&q.id.0));
    match &q.method {
        Method::Ping | Method::Unknown(_) => {}
        Method::FindNode { target } => {
            a.insert("target".into(), bytes(&target.0));
        }
        Method::GetPeers { info_hash, scrape } => {
            a.insert("info_hash".into(), bytes(&info_hash.0));
            if *scrape {
                a.insert("scrape".into(), Value::from(1u8));
            }
        }
        Method::AnnouncePeer { info_hash, port, implied_port, token, seed } => {
            a.insert("info_hash".into(), bytes(&info_hash.0));
            a.insert("port".into(), Value::from(port.unwrap_or(0)));
            if *implied_port {
                a.insert("implied_port".into(), Value::from(1u8));
            }
            a.insert("token".into(), bytes(token));
            if *seed {
                a.insert("seed".into(), Value::from(1u8));
            }
        }
    }
    let mut want = Vec::new();
    if q.want.v4 {
        want.push(bytes(b"n4"));
    }
    if q.want.v6 {
        want.push(bytes(b"n6"));
    }
    if !want.is_empty() {
        a.insert("want".into(), Value::List(want));
    }
    a
}

fn response_fields(r: &Response) -> BTreeMap<ByteString, Value> {
    let mut fields: BTreeMap<ByteString, Value> = BTreeMap::new();
    fields.insert("id".into(), bytes(&r.id.0));
    if !r.nodes.is_empty() {
        fields.insert("nodes".into(), bytes(&encode_nodes(&r.nodes, Family::V4)));
    }
    if !r.nodes6.is_empty() {
        fields.insert("nodes6".into(), bytes(&encode_nodes(&r.nodes6, Family::V6)));
    }
    if let Some(token) = &r.token {
        fields.insert("token".into(), bytes(token));
    }
    if !r.values.is_empty() {
        fields.insert("values".into(), Value::List(r.values.iter().map(|p| bytes(&compact_addr(p))).collect()));
    }
    if let Some(f) = &r.bloom_seeds {
        fields.insert("BFsd".into(), bytes(f.as_bytes()));
    }
    if let Some(f) = &r.bloom_peers {
        fields.insert("BFpe".into(), bytes(f.as_bytes()));
    }
    fields
}

/// The byte string stored under `key`, if there is one.
fn byte_field<'a>(dict: &'a BTreeMap<ByteString, Value>, key: &[u8]) -> Option<&'a [u8]> {
    dict.get(key).and_then(Value::as_byte_str).map(|b| b.as_slice())
}

fn decode_query(top: &BTreeMap<ByteString, Value>, tid: &[u8]) -> Result<Query, KrpcError> {
    let bad = |reason| KrpcError::BadQuery { tid: tid.to_vec(), reason };
    let name = byte_field(top, b"q").ok_or_else(|| bad("missing method name"))?;
    let args = top.get(b"a".as_slice()).and_then(Value::as_dict).ok_or_else(|| bad("missing arguments"))?;
    let id = byte_field(args, b"id").and_then(NodeId::from_slice).ok_or_else(|| bad("invalid id"))?;
    let hash = |key: &[u8], reason| byte_field(args, key).and_then(NodeId::from_slice).ok_or_else(|| bad(reason));
    let flag = |key: &[u8]| args.get(key).and_then(Value::as_u64).is_some_and(|v| v != 0);
    let method = match name {
        b"ping" => Method::Ping,
        b"find_node" => Method::FindNode { target: hash(b"target", "invalid target")? },
        b"get_peers" => Method::GetPeers {
            info_hash: InfoHash(hash(b"info_hash", "invalid info_hash")?.0),
            scrape: flag(b"scrape"),
        },
        b"announce_peer" => {
            let info_hash = InfoHash(hash(b"info_hash", "invalid info_hash")?.0);
            let implied_port = flag(b"implied_port");
            let port = args.get(b"port".as_slice()).and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
            let port = match port {
                Some(p) if p != 0 => Some(p),
                _ if implied_port => None,
                _ => return Err(bad("invalid port")),
            };
            let token = byte_field(args, b"token").ok_or_else(|| bad("missing token"))?;
            if token.len() > MAX_TOKEN_LEN {
                return Err(bad("token too long"));
            }
            Method::AnnouncePeer { info_hash, port, implied_port, token: token.to_vec(), seed: flag(b"seed") }
        }
        other => Method::Unknown(other[..other.len().min(32)].to_vec()),
    };
    let mut want = Want::default();
    if let Some(list) = args.get(b"want".as_slice()).and_then(Value::as_list) {
        for item in list.iter().take(8).filter_map(Value::as_byte_str) {
            match item.as_slice() {
                b"n4" => want.v4 = true,
                b"n6" => want.v6 = true,
                _ => {}
            }
        }
    }
    Ok(Query { id, want, method })
}

fn decode_response(top: &BTreeMap<ByteString, Value>) -> Result<Response, KrpcError> {
    let r = top.get(b"r".as_slice()).and_then(Value::as_dict).ok_or(KrpcError::Malformed("missing response body"))?;
    let id = byte_field(r, b"id").and_then(NodeId::from_slice).ok_or(KrpcError::Malformed("invalid responder id"))?;
    let nodes_of = |key: &[u8], family| -> Result<Vec<NodeInfo>, KrpcError> {
        match r.get(key) {
            None => Ok(Vec::new()),
            Some(v) => {
                let raw = v.as_byte_str().ok_or(KrpcError::Malformed("nodes is not a byte string"))?;
                let mut nodes = decode_nodes(raw, family).ok_or(KrpcError::Malformed("bad compact node length"))?;
                nodes.truncate(MAX_NODES);
                Ok(nodes)
            }
        }
    };
    let nodes = nodes_of(b"nodes", Family::V4)?;
    let nodes6 = nodes_of(b"nodes6", Family::V6)?;
    // An overlong token cannot be echoed back safely; the answer is still useful without it.
    let token = byte_field(r, b"token").filter(|t| t.len() <= MAX_TOKEN_LEN).map(<[u8]>::to_vec);
    let values = match r.get(b"values".as_slice()) {
        None => Vec::new(),
        Some(v) => {
            let list = v.as_list().ok_or(KrpcError::Malformed("values is not a list"))?;
            // Entries of the wrong length are skipped: other clients do the same.
            list.iter()
                .filter_map(Value::as_byte_str)
                .filter_map(|b| parse_compact_addr(b))
                .filter(super::node::is_usable)
                .take(MAX_VALUES)
                .collect()
        }
    };
    // A filter of the wrong size (or type) is ignored; the rest of the answer still counts.
    let bloom_seeds = byte_field(r, b"BFsd").and_then(ScrapeBloom::from_bytes);
    let bloom_peers = byte_field(r, b"BFpe").and_then(ScrapeBloom::from_bytes);
    Ok(Response { id, nodes, nodes6, values, token, bloom_seeds, bloom_peers })
}

/// An integer of either sign (`bt_bencode` reads non-negative ones as unsigned).
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_u64().and_then(|u| i64::try_from(u).ok()))
}

fn decode_error(top: &BTreeMap<ByteString, Value>) -> Result<Body, KrpcError> {
    let list = top.get(b"e".as_slice()).and_then(Value::as_list).ok_or(KrpcError::Malformed("missing error body"))?;
    let code = list.first().and_then(integer).ok_or(KrpcError::Malformed("error without a code"))?;
    let text = list.get(1).and_then(Value::as_byte_str).map(|b| b.as_slice()).unwrap_or_default();
    let message = String::from_utf8_lossy(&text[..text.len().min(MAX_ERROR_TEXT)]).into_owned();
    Ok(Body::Error { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &[u8; 20]) -> NodeId {
        NodeId(*s)
    }

    fn query(method: Method) -> Message {
        Message {
            tid: b"aa".to_vec(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Query(Query { id: id(b"abcdefghij0123456789"), want: Want::default(), method }),
        }
    }

    fn response(r: Response) -> Message {
        Message { tid: b"aa".to_vec(), version: None, ip: None, read_only: false, body: Body::Response(r) }
    }

    /// Encodes `msg`, checks the bytes are `wire`, and that `wire` decodes back to `msg`.
    fn both_ways(msg: Message, wire: &[u8]) {
        assert_eq!(String::from_utf8_lossy(&msg.encode()), String::from_utf8_lossy(wire));
        assert_eq!(Message::decode(wire).unwrap(), msg);
    }

    #[test]
    fn bep5_ping_examples() {
        both_ways(query(Method::Ping), b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
        both_ways(
            response(Response { id: id(b"mnopqrstuvwxyz123456"), ..Default::default() }),
            b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        );
    }

    #[test]
    fn bep5_error_example() {
        let msg = Message {
            tid: b"aa".to_vec(),
            version: None,
            ip: None,
            read_only: false,
            body: Body::Error { code: ERROR_GENERIC, message: "A Generic Error Ocurred".into() },
        };
        both_ways(msg, b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
    }

    #[test]
    fn bep5_find_node_examples() {
        both_ways(
            query(Method::FindNode { target: id(b"mnopqrstuvwxyz123456") }),
            b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        );
        // BEP 5 abbreviates the node string as "def456..." (9 bytes): not whole 26-byte entries.
        let example = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
        assert_eq!(Message::decode(example), Err(KrpcError::Malformed("bad compact node length")));
        // The same answer with one real entry.
        let node = NodeInfo { id: id(b"zzzzzzzzzzzzzzzzzzzz"), addr: "65.66.67.68:16705".parse().unwrap() };
        both_ways(
            response(Response { id: id(b"0123456789abcdefghij"), nodes: vec![node], ..Default::default() }),
            b"d1:rd2:id20:0123456789abcdefghij5:nodes26:zzzzzzzzzzzzzzzzzzzzABCDAAe1:t2:aa1:y1:re",
        );
    }

    #[test]
    fn bep5_get_peers_examples() {
        both_ways(
            query(Method::GetPeers { info_hash: InfoHash(*b"mnopqrstuvwxyz123456"), scrape: false }),
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        );
        // "axje.u" and "idhtnm" are the BEP's two compact peers.
        let peers = vec!["97.120.106.101:11893".parse().unwrap(), "105.100.104.116:28269".parse().unwrap()];
        both_ways(
            response(Response {
                id: id(b"abcdefghij0123456789"),
                token: Some(b"aoeusnth".to_vec()),
                values: peers,
                ..Default::default()
            }),
            b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        );
        let example = b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re";
        assert!(Message::decode(example).is_err());
    }

    #[test]
    fn bep5_announce_peer_examples() {
        both_ways(
            query(Method::AnnouncePeer {
                info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                port: Some(6881),
                implied_port: true,
                token: b"aoeusnth".to_vec(),
                seed: false,
            }),
            b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e\
              5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        );
        // implied_port without a usable port is fine; no port and no implied_port is not.
        let implied = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz123456\
                        4:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
        let Body::Query(q) = Message::decode(implied).unwrap().body else { panic!("not a query") };
        assert!(matches!(q.method, Method::AnnouncePeer { port: None, implied_port: true, .. }));
        let portless = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234565:token1:xe\
                         1:q13:announce_peer1:t2:aa1:y1:qe";
        assert_eq!(Message::decode(portless), Err(KrpcError::BadQuery { tid: b"aa".to_vec(), reason: "invalid port" }));
    }

    #[test]
    fn bep33_scrape_seed_and_filters_round_trip() {
        both_ways(
            query(Method::GetPeers { info_hash: InfoHash(*b"mnopqrstuvwxyz123456"), scrape: true }),
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:scrapei1ee\
              1:q9:get_peers1:t2:aa1:y1:qe",
        );
        both_ways(
            query(Method::AnnouncePeer {
                info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                port: Some(6881),
                implied_port: false,
                token: b"aoeusnth".to_vec(),
                seed: true,
            }),
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e\
              4:seedi1e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        );
        let mut seeds = ScrapeBloom::new();
        seeds.insert("192.0.2.1".parse().unwrap());
        let r = Response {
            id: id(b"abcdefghij0123456789"),
            token: Some(b"aoeusnth".to_vec()),
            bloom_seeds: Some(seeds.clone()),
            bloom_peers: Some(ScrapeBloom::new()),
            ..Default::default()
        };
        let wire = response(r.clone()).encode();
        let mut expected = b"d1:rd4:BFpe256:".to_vec();
        expected.extend_from_slice(&[0; 256]);
        expected.extend_from_slice(b"4:BFsd256:");
        expected.extend_from_slice(seeds.as_bytes());
        expected.extend_from_slice(b"2:id20:abcdefghij01234567895:token8:aoeusnthe1:t2:aa1:y1:re");
        assert_eq!(wire, expected);
        assert_eq!(Message::decode(&wire).unwrap(), response(r));
    }

    #[test]
    fn filters_of_the_wrong_size_or_type_are_ignored_and_the_answer_kept() {
        let wire = b"d1:rd4:BFpei5e4:BFsd3:abc2:id20:abcdefghij01234567895:token8:aoeusnth\
                     6:valuesl6:axje.uee1:t2:aa1:y1:re";
        let expected = Response {
            id: id(b"abcdefghij0123456789"),
            token: Some(b"aoeusnth".to_vec()),
            values: vec!["97.120.106.101:11893".parse().unwrap()],
            ..Default::default()
        };
        assert_eq!(Message::decode(wire).unwrap(), response(expected));
        let mut long = b"d1:rd4:BFsd257:".to_vec();
        long.extend_from_slice(&[0xff; 257]);
        long.extend_from_slice(b"2:id20:abcdefghij0123456789e1:t2:aa1:y1:re");
        let Body::Response(r) = Message::decode(&long).unwrap().body else { panic!("not a response") };
        assert_eq!(r.bloom_seeds, None);
        // scrape=0 is off, as an absent key is.
        let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234566:scrapei0ee\
                  1:q9:get_peers1:t2:aa1:y1:qe";
        let Body::Query(q) = Message::decode(q).unwrap().body else { panic!("not a query") };
        assert!(matches!(q.method, Method::GetPeers { scrape: false, .. }));
    }

    #[test]
    fn bep32_and_bep42_fields_round_trip() {
        let v6 = NodeInfo { id: id(b"qqqqqqqqqqqqqqqqqqqq"), addr: "[2001:db8::7]:6881".parse().unwrap() };
        let mut msg = response(Response {
            id: id(b"abcdefghij0123456789"),
            nodes6: vec![v6],
            values: vec!["[2001:db8::9]:51413".parse().unwrap(), "10.0.0.1:1".parse().unwrap()],
            ..Default::default()
        });
        msg.ip = Some("203.0.113.5:6881".parse().unwrap());
        msg.version = Some(b"SH01".to_vec());
        assert_eq!(Message::decode(&msg.encode()).unwrap(), msg);

        let mut q = query(Method::FindNode { target: id(b"mnopqrstuvwxyz123456") });
        q.read_only = true;
        if let Body::Query(inner) = &mut q.body {
            inner.want = Want { v4: true, v6: true };
        }
        let wire = q.encode();
        assert!(String::from_utf8_lossy(&wire).contains("4:wantl2:n42:n6e"));
        assert_eq!(Message::decode(&wire).unwrap(), q);
    }

    #[test]
    fn unknown_methods_and_bad_arguments() {
        let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe";
        let Body::Query(q) = Message::decode(unknown).unwrap().body else { panic!("not a query") };
        assert_eq!(q.method, Method::Unknown(b"vote".to_vec()));
        let short_id = b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe";
        assert_eq!(Message::decode(short_id), Err(KrpcError::BadQuery { tid: b"xy".to_vec(), reason: "invalid id" }));
        let no_target = b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe";
        assert!(matches!(Message::decode(no_target), Err(KrpcError::BadQuery { reason: "invalid target", .. })));
        let no_args = b"d1:q4:ping1:t2:xy1:y1:qe";
        assert!(matches!(Message::decode(no_args), Err(KrpcError::BadQuery { reason: "missing arguments", .. })));
    }

    #[test]
    fn hostile_datagrams_are_errors_not_panics() {
        let mut deep = b"d1:t2:aa1:y1:q1:a".to_vec();
        deep.extend(std::iter::repeat_n(b'l', 100_000));
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"d".to_vec(),
            b"de".to_vec(),
            b"le".to_vec(),
            b"i5e".to_vec(),
            deep,
            vec![b'l'; MAX_DATAGRAM_LEN + 1],
            // Huge string length.
            b"d1:t18446744073709551615:aae".to_vec(),
            b"d1:t99999999999999999999999:aae".to_vec(),
            // Wrong types everywhere.
            b"d1:ti1e1:y1:qe".to_vec(),
            b"d1:t2:aa1:yi1ee".to_vec(),
            b"d1:t2:aa1:y1:re".to_vec(),
            b"d1:rle1:t2:aa1:y1:re".to_vec(),
            b"d1:rd2:idi5ee1:t2:aa1:y1:re".to_vec(),
            b"d1:rd2:id20:abcdefghij01234567895:nodesi5ee1:t2:aa1:y1:re".to_vec(),
            b"d1:rd2:id20:abcdefghij01234567896:nodes625:abcdee1:t2:aa1:y1:re".to_vec(),
            b"d1:rd2:id20:abcdefghij01234567896:values3:abce1:t2:aa1:y1:re".to_vec(),
            b"d1:el4:spame1:t2:aa1:y1:ee".to_vec(),
            b"d1:ei5e1:t2:aa1:y1:ee".to_vec(),
            b"d1:t40:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1:y1:qe".to_vec(),
            b"d1:ad2:id20:abcdefghij01234567899:info_hashi1ee1:q9:get_peers1:t2:aa1:y1:qe".to_vec(),
        ];
        for case in &cases {
            assert!(Message::decode(case).is_err(), "{:?}", String::from_utf8_lossy(case));
        }
        // Junk `values` entries are skipped, not fatal; junk optional fields are ignored.
        let odd = b"d2:ip3:abc1:rd2:id20:abcdefghij01234567896:valuesl3:abci5e6:axje.uee1:t2:aa1:v1:x1:y1:re";
        let msg = Message::decode(odd).unwrap();
        assert_eq!(msg.ip, None);
        let Body::Response(r) = msg.body else { panic!("not a response") };
        assert_eq!(r.values, vec!["97.120.106.101:11893".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn every_prefix_of_a_real_message_is_refused() {
        let full = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz123456\
                     4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        assert!(Message::decode(full).is_ok());
        for cut in 0..full.len() {
            assert!(Message::decode(&full[..cut]).is_err(), "prefix {cut}");
        }
    }

    #[test]
    fn mutated_scrape_answers_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(33);
        let mut seeds = ScrapeBloom::new();
        seeds.insert("192.0.2.1".parse().unwrap());
        let r = Response {
            id: id(b"abcdefghij0123456789"),
            token: Some(b"aoeusnth".to_vec()),
            values: vec!["192.0.2.1:6881".parse().unwrap()],
            bloom_seeds: Some(seeds),
            bloom_peers: Some(ScrapeBloom::new()),
            ..Default::default()
        };
        let seed = response(r).encode();
        for _ in 0..20_000 {
            let mut m = seed.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..m.len());
                m[at] = rng.random();
            }
            let _ = Message::decode(&m);
        }
    }

    #[test]
    fn decoding_random_bytes_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let seed = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
        for _ in 0..20_000 {
            let mut m = seed.to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..m.len());
                m[at] = rng.random();
            }
            let _ = Message::decode(&m);
        }
    }
}
