//! The TCP connector of HTTP agents under `--bind-interface`: ureq's own opens sockets the
//! routing table places, so with an interface set the agents connect through this one, whose
//! sockets are bound to it (see [`crate::device`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
};

/// Opens TCP connections from sockets bound to the interface (the first address that
/// answers); a chained connection (a SOCKS proxy's) is passed through as it is.
#[derive(Debug, Default)]
pub(crate) struct BoundTcpConnector;

impl<In: Transport> Connector<In> for BoundTcpConnector {
    type Out = Either<In, BoundTcp>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(c) = chained {
            return Ok(Some(Either::A(c)));
        }
        let budget = details.timeout.not_zero().map(|t| *t);
        let mut last = None;
        for addr in details.addrs.iter() {
            let s = Socket::new(Domain::for_address(*addr), Type::STREAM, Some(Protocol::TCP))?;
            crate::device::apply(&s)?;
            let connected = match budget {
                Some(t) => s.connect_timeout(&(*addr).into(), t),
                None => s.connect(&(*addr).into()),
            };
            match connected {
                Ok(()) => {
                    let config = details.config;
                    let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
                    let stream: TcpStream = s.into();
                    stream.set_nodelay(true)?;
                    return Ok(Some(Either::B(BoundTcp { stream, buffers })));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or(ureq::Error::ConnectionFailed, ureq::Error::Io))
    }
}

/// A blocking TCP stream carrying one HTTP connection.
#[derive(Debug)]
pub(crate) struct BoundTcp {
    stream: TcpStream,
    buffers: LazyBuffers,
}

/// The socket timeout for the next read or write (`None`: none; never zero, which std refuses).
fn socket_timeout(t: &NextTimeout) -> Option<Duration> {
    t.not_zero().map(|d| (*d).max(Duration::from_millis(1)))
}

fn io_error(e: io::Error, t: &NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(t.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for BoundTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let t = timeout.for_write();
        self.stream.set_write_timeout(socket_timeout(&t))?;
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(|e| io_error(e, &t))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let t = timeout.for_read();
        self.stream.set_read_timeout(socket_timeout(&t))?;
        let n = loop {
            match self.stream.read(self.buffers.input_append_buf()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io_error(e, &t))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when a read would block: no end of stream, no bytes we did not ask for.
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let open = matches!(self.stream.read(&mut [0]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).is_ok() && open
    }
}
