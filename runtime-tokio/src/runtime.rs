//! tokio's side of a session: tasks, the blocking pool, timers and sockets for the engine task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use shoal_host::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The tokio runtime the session was started on.
pub struct Tokio;

/// A tokio task aborted when dropped (tokio's own handles detach instead).
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runtime for Tokio {
    type Task = AbortOnDrop;
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;
    type Udp = UdpSocket;

    fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> Self::Task {
        AbortOnDrop(tokio::spawn(fut))
    }

    fn spawn_blocking(work: impl FnOnce() + Send + 'static) {
        // Detached: the work reports its result itself.
        drop(tokio::task::spawn_blocking(work));
    }

    async fn sleep_until(at: std::time::Instant) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }

    async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        listener.accept().await
    }

    async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        TcpStream::connect(addr).await
    }

    fn listener_from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(listener)
    }

    async fn connecting_from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let stream = TcpStream::from_std(stream)?;
        // Writable once the handshake is over, either way; the socket error says which.
        stream.writable().await?;
        match stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    fn split(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
        let _ = stream.set_nodelay(true);
        stream.into_split()
    }

    async fn read(reader: &mut OwnedReadHalf, buf: &mut [u8]) -> io::Result<usize> {
        reader.read(buf).await
    }

    async fn write_all(writer: &mut OwnedWriteHalf, data: &[u8]) -> io::Result<()> {
        writer.write_all(data).await
    }

    async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect())
    }

    async fn udp_connect(peer: SocketAddr) -> io::Result<UdpSocket> {
        let socket = UdpSocket::bind(if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await?;
        socket.connect(peer).await?;
        Ok(socket)
    }

    async fn udp_send(udp: &UdpSocket, data: &[u8]) -> io::Result<usize> {
        udp.send(data).await
    }

    async fn udp_recv(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<usize> {
        udp.recv(buf).await
    }

    fn udp_from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(socket)
    }

    async fn udp_send_to(udp: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        udp.send_to(data, to).await
    }

    async fn udp_recv_from(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        udp.recv_from(buf).await
    }
}
