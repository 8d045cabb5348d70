//! The client side of one SOCKS5 handshake, as a machine: greeting, method selection,
//! optional username/password, request, reply.

use super::codec::{self, Command, Credentials, Target};
use super::error::SocksError;

/// Where a handshake stands: the variants are the answers still owed by the server.
#[derive(Debug)]
enum Phase {
    /// The greeting was sent; the method selection is owed.
    Method,
    /// Credentials were sent; their verdict is owed.
    Auth,
    /// The request was sent; its reply is owed.
    Reply,
    /// Finished (successfully or not): nothing more is taken.
    Over,
}

/// What a handshake needs after some bytes from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// More bytes (write [`Handshake::transmit`] first, if it has any).
    NeedMore,
    /// The proxy granted the request.
    Done {
        /// The address the proxy bound for it (for UDP ASSOCIATE: where datagrams go).
        bound: Target,
        /// Bytes that followed the reply: the first bytes of the relayed stream.
        rest: Vec<u8>,
    },
}

/// The client side of a SOCKS5 handshake for one request.
///
/// Write what [`Handshake::transmit`] returns, feed everything read to
/// [`Handshake::handle_bytes`] until it returns [`Status::Done`] or an error, and call
/// [`Handshake::handle_eof`] if the server closes first. The buffer never holds more than one
/// server message ([`codec::MAX_REPLY`] bytes) plus the bytes of the last read.
#[derive(Debug)]
pub struct Handshake {
    phase: Phase,
    command: Command,
    target: Target,
    credentials: Option<Credentials>,
    /// Bytes to write.
    out: Vec<u8>,
    /// Bytes of the server's current message read so far.
    buf: Vec<u8>,
}

impl Handshake {
    /// Starts a handshake asking for `command` to `target`, offering username/password
    /// authentication when `credentials` are given (and no authentication in any case).
    pub fn new(command: Command, target: Target, credentials: Option<Credentials>) -> Result<Handshake, SocksError> {
        target.validate()?;
        Ok(Handshake {
            phase: Phase::Method,
            command,
            out: codec::greeting(credentials.is_some()),
            target,
            credentials,
            buf: Vec::new(),
        })
    }

    /// Bytes to write to the server now (empty when there are none).
    pub fn transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Takes bytes read from the server.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<Status, SocksError> {
        self.buf.extend_from_slice(data);
        let result = self.advance();
        if result.is_err() {
            self.phase = Phase::Over;
            self.buf = Vec::new();
        }
        result
    }

    /// The server closed the connection: the error that ends the handshake.
    pub fn handle_eof(&mut self) -> SocksError {
        self.phase = Phase::Over;
        SocksError::Closed
    }

    fn advance(&mut self) -> Result<Status, SocksError> {
        loop {
            let step = match self.phase {
                Phase::Method => self.method()?,
                Phase::Auth => self.auth()?,
                Phase::Reply => return self.reply(),
                // Bytes after the end belong to the relayed stream, which the caller holds.
                Phase::Over => return Err(SocksError::Unsolicited),
            };
            if !step {
                return Ok(Status::NeedMore);
            }
            // A message was consumed; anything after it came before we asked.
            if !self.buf.is_empty() {
                return Err(SocksError::Unsolicited);
            }
        }
    }

    /// The method selection: on to credentials or the request. `false`: incomplete.
    fn method(&mut self) -> Result<bool, SocksError> {
        let method = match self.buf[..] {
            [v, ..] if v != codec::VERSION => return Err(SocksError::NotSocks5(v)),
            [_, method, ..] => method,
            _ => return Ok(false),
        };
        self.buf.drain(..2);
        match (method, &self.credentials) {
            (codec::NO_AUTH, _) => self.send_request(),
            (codec::USER_PASS, Some(c)) => {
                self.out.extend(codec::auth_request(c));
                self.phase = Phase::Auth;
            }
            (codec::NO_ACCEPTABLE, _) => return Err(SocksError::NoAcceptableMethod),
            (other, _) => return Err(SocksError::UnexpectedMethod(other)),
        }
        Ok(true)
    }

    /// The verdict on the credentials. `false`: incomplete.
    fn auth(&mut self) -> Result<bool, SocksError> {
        match self.buf[..] {
            [v, ..] if v != codec::AUTH_VERSION => return Err(SocksError::BadAuthVersion(v)),
            [_, status, ..] if status != 0 => return Err(SocksError::AuthFailed),
            [_, _, ..] => {}
            _ => return Ok(false),
        }
        self.buf.drain(..2);
        self.send_request();
        Ok(true)
    }

    fn send_request(&mut self) {
        self.out.extend(codec::request(self.command, &self.target));
        self.phase = Phase::Reply;
    }

    fn reply(&mut self) -> Result<Status, SocksError> {
        match codec::parse_reply(&self.buf)? {
            None => Ok(Status::NeedMore),
            Some((bound, used)) => {
                self.phase = Phase::Over;
                let rest = self.buf.split_off(used);
                self.buf = Vec::new();
                Ok(Status::Done { bound, rest })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socks::ReplyCode;

    fn peer() -> Target {
        Target::Ip("127.0.0.1:6881".parse().unwrap())
    }

    const OK_REPLY: [u8; 10] = [5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38];

    #[test]
    fn connect_without_authentication() {
        let mut h = Handshake::new(Command::Connect, peer(), None).unwrap();
        assert_eq!(h.transmit(), [5, 1, 0]);
        assert_eq!(h.transmit(), Vec::<u8>::new());
        assert_eq!(h.handle_bytes(&[5]).unwrap(), Status::NeedMore);
        assert_eq!(h.handle_bytes(&[0]).unwrap(), Status::NeedMore);
        assert_eq!(h.transmit(), [5, 1, 0, 1, 127, 0, 0, 1, 0x1a, 0xe1]);
        // The reply in pieces, with the peer's first bytes right behind it.
        assert_eq!(h.handle_bytes(&OK_REPLY[..4]).unwrap(), Status::NeedMore);
        let mut tail = OK_REPLY[4..].to_vec();
        tail.extend_from_slice(b"\x13BitTorrent");
        let done = h.handle_bytes(&tail).unwrap();
        let bound = Target::Ip("127.0.0.1:1080".parse().unwrap());
        assert_eq!(done, Status::Done { bound, rest: b"\x13BitTorrent".to_vec() });
    }

    #[test]
    fn username_and_password() {
        let creds = Credentials::new("alice", "s3cret").unwrap();
        let mut h = Handshake::new(Command::UdpAssociate, peer(), Some(creds)).unwrap();
        assert_eq!(h.transmit(), [5, 2, 0, 2]);
        assert_eq!(h.handle_bytes(&[5, 2]).unwrap(), Status::NeedMore);
        assert_eq!(h.transmit(), b"\x01\x05alice\x06s3cret");
        assert_eq!(h.handle_bytes(&[1, 0]).unwrap(), Status::NeedMore);
        assert_eq!(h.transmit()[..3], [5, 3, 0]);
        assert!(matches!(h.handle_bytes(&OK_REPLY).unwrap(), Status::Done { .. }));
    }

    #[test]
    fn refusals_are_typed() {
        let creds = || Some(Credentials::new("alice", "wrong").unwrap());
        // Credentials offered, the server's answers one by one, the error they end with.
        type Case = (Option<Credentials>, &'static [&'static [u8]], SocksError);
        let cases: [Case; 7] = [
            (creds(), &[&[5, 2], &[1, 1]], SocksError::AuthFailed),
            (creds(), &[&[5, 0xff]], SocksError::NoAcceptableMethod),
            (None, &[&[5, 2]], SocksError::UnexpectedMethod(2)),
            (None, &[&[5, 0], &[5, 4, 0, 1]], SocksError::Refused(ReplyCode::HostUnreachable)),
            (creds(), &[&[5, 2], &[2, 0]], SocksError::BadAuthVersion(2)),
            (None, &[&[4, 90]], SocksError::NotSocks5(4)),
            (None, &[b"HTTP/1.1 400 Bad Request\r\n"], SocksError::NotSocks5(b'H')),
        ];
        for (credentials, answers, error) in cases {
            let mut h = Handshake::new(Command::Connect, peer(), credentials).unwrap();
            let (last, first) = answers.split_last().unwrap();
            for a in first {
                assert_eq!(h.handle_bytes(a), Ok(Status::NeedMore), "{answers:?}");
            }
            assert_eq!(h.handle_bytes(last), Err(error), "{answers:?}");
            // Once failed, nothing more is taken.
            assert_eq!(h.handle_bytes(&[5, 0]), Err(SocksError::Unsolicited));
        }
    }

    #[test]
    fn a_server_that_talks_out_of_turn_or_hangs_up() {
        // Two answers at once: the second came before the request was sent.
        let mut h = Handshake::new(Command::Connect, peer(), None).unwrap();
        assert_eq!(h.handle_bytes(&[5, 0, 5, 0]), Err(SocksError::Unsolicited));
        // Closed half-way through the reply.
        let mut h = Handshake::new(Command::Connect, peer(), None).unwrap();
        h.handle_bytes(&[5, 0]).unwrap();
        assert_eq!(h.handle_bytes(&OK_REPLY[..6]).unwrap(), Status::NeedMore);
        assert_eq!(h.handle_eof(), SocksError::Closed);
        // Garbage everywhere: an error or a wait, never a panic or an unbounded buffer.
        let mut h = Handshake::new(Command::Connect, peer(), None).unwrap();
        h.handle_bytes(&[5, 0]).unwrap();
        let r = h.handle_bytes(&[5, 0, 0, 3, 255]);
        assert_eq!(r.unwrap(), Status::NeedMore);
        assert!(h.buf.len() <= codec::MAX_REPLY);
    }

    #[test]
    fn bad_targets_are_refused_up_front() {
        let long = Target::Domain("x".repeat(300), 80);
        assert_eq!(Handshake::new(Command::Connect, long, None).unwrap_err(), SocksError::BadDomain);
    }
}
