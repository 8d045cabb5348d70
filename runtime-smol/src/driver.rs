//! smol's side of a session: tasks, the blocking pool, timers and sockets for the engine task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use async_net::{TcpListener, TcpStream, UdpSocket};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use shoal_host::Runtime;

/// The smol runtime: smol's global executor, the `blocking` pool and async-io's reactor.
pub struct Smol;

impl Runtime for Smol {
    type Task = smol::Task<()>;
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Reader = TcpStream;
    type Writer = TcpStream;
    type Udp = UdpSocket;

    fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> Self::Task {
        smol::spawn(fut)
    }

    fn spawn_blocking(work: impl FnOnce() + Send + 'static) {
        blocking::unblock(work).detach();
    }

    async fn sleep_until(at: std::time::Instant) {
        async_io::Timer::at(at).await;
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
        TcpListener::try_from(listener)
    }

    async fn connecting_from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        let stream = async_io::Async::new(stream)?;
        // Writable once the handshake is over, either way; the socket error says which.
        stream.writable().await?;
        match stream.get_ref().take_error()? {
            Some(e) => Err(e),
            None => Ok(TcpStream::from(stream)),
        }
    }

    fn split(stream: TcpStream) -> (TcpStream, TcpStream) {
        let _ = stream.set_nodelay(true);
        (stream.clone(), stream)
    }

    async fn read(reader: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        reader.read(buf).await
    }

    async fn write_all(writer: &mut TcpStream, data: &[u8]) -> io::Result<()> {
        writer.write_all(data).await
    }

    async fn resolve(host: String, port: u16) -> io::Result<Vec<SocketAddr>> {
        async_net::resolve((host.as_str(), port)).await
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
        UdpSocket::try_from(socket)
    }

    async fn udp_send_to(udp: &UdpSocket, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        udp.send_to(data, to).await
    }

    async fn udp_recv_from(udp: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        udp.recv_from(buf).await
    }
}
