//! Peer connections and listeners: bytes in, bytes out, nothing else.

use std::net::SocketAddr;

use async_channel::Sender;
use async_net::{TcpListener, TcpStream};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use shoal_core::ConnId;

use crate::driver::Input;

/// Read buffer per connection; one read hands the engine up to this many bytes.
const READ_BUF: usize = 256 * 1024;

/// The runtime's side of one connection: a queue of bytes to write, and the task doing I/O.
pub(crate) struct Conn {
    writer: Sender<Vec<u8>>,
    _task: smol::Task<()>,
}

impl Conn {
    /// Queues bytes for writing (the engine bounds how much it queues).
    pub fn send(&self, data: Vec<u8>) {
        let _ = self.writer.try_send(data);
    }
}

/// Dials `addr`; reports `Connected` then data, or `Closed` on failure.
pub(crate) fn connect(conn: ConnId, addr: SocketAddr, inputs: Sender<Input>) -> Conn {
    let (writer, queue) = async_channel::unbounded::<Vec<u8>>();
    let task = smol::spawn(async move {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if inputs.send(Input::Connected(conn)).await.is_ok() {
                    run(conn, stream, queue, inputs).await;
                }
            }
            Err(_) => {
                let _ = inputs.send(Input::Closed(conn)).await;
            }
        }
    });
    Conn { writer, _task: task }
}

/// Takes over an accepted stream.
pub(crate) fn accepted(conn: ConnId, stream: TcpStream, inputs: Sender<Input>) -> Conn {
    let (writer, queue) = async_channel::unbounded::<Vec<u8>>();
    let _ = stream.set_nodelay(true);
    let task = smol::spawn(run(conn, stream, queue, inputs));
    Conn { writer, _task: task }
}

async fn run(conn: ConnId, stream: TcpStream, queue: async_channel::Receiver<Vec<u8>>, inputs: Sender<Input>) {
    let reader = {
        let mut stream = stream.clone();
        let inputs = inputs.clone();
        async move {
            let mut buf = vec![0u8; READ_BUF];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if inputs.send(Input::Data(conn, buf[..n].to_vec())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    };
    let writer = {
        let mut stream = stream.clone();
        let inputs = inputs.clone();
        async move {
            while let Ok(data) = queue.recv().await {
                if stream.write_all(&data).await.is_err() {
                    break;
                }
                if inputs.send(Input::Sent(conn, data.len())).await.is_err() {
                    break;
                }
            }
        }
    };
    future::or(reader, writer).await;
    let _ = inputs.send(Input::Closed(conn)).await;
}

/// Binds a listener; its accept loop runs until the returned task is dropped.
pub(crate) async fn listen(addr: SocketAddr, inputs: Sender<Input>) -> std::io::Result<(SocketAddr, smol::Task<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = smol::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    if inputs.send(Input::Incoming(stream, peer)).await.is_err() {
                        break;
                    }
                }
                // Out of descriptors and the like: back off briefly instead of spinning.
                Err(_) => {
                    async_io::Timer::after(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok((local, task))
}
