//! What a runtime adapter supplies: the [`Runtime`] trait.

use std::future::Future;
use std::net::SocketAddr;

/// What an executor gives a Shoal session: tasks, a blocking pool, a clock, sockets.
///
/// Implementors are marker types; every method is an associated function. Futures must be
/// `Send` because the engine task and its helpers may run on a work-stealing executor.
pub trait Runtime: Sized + Send + Sync + 'static {
    /// A spawned task; dropping it cancels the task.
    type Task: Send + Sync + 'static;
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;
    /// A connected TCP stream.
    type Stream: Send + 'static;
    /// The reading half of a stream.
    type Reader: Send + 'static;
    /// The writing half of a stream.
    type Writer: Send + 'static;
    /// A UDP socket connected to one peer.
    type Udp: Send + Sync + 'static;

    /// Spawns a task, cancelled when the returned handle is dropped.
    fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> Self::Task;
    /// Runs `work` on the blocking pool, detached (disk I/O, hashing, HTTP).
    fn spawn_blocking(work: impl FnOnce() + Send + 'static);
    /// Completes at `at` (a deadline of the engine, in the past or future).
    fn sleep_until(at: std::time::Instant) -> impl Future<Output = ()> + Send;

    /// Binds a TCP listener.
    fn bind(addr: SocketAddr) -> impl Future<Output = std::io::Result<Self::Listener>> + Send;
    /// The address a listener is bound to.
    fn local_addr(listener: &Self::Listener) -> std::io::Result<SocketAddr>;
    /// Accepts one connection.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send + '_;
    /// Opens a TCP connection.
    fn connect(addr: SocketAddr) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    /// Adopts a listener set up with std (and socket2) options, already non-blocking
    /// (`--bind-interface`: bound to a device).
    fn listener_from_std(listener: std::net::TcpListener) -> std::io::Result<Self::Listener>;
    /// Adopts a non-blocking stream whose connect is under way (set up with socket2 options:
    /// bound to a device) and completes once it is connected, or with why not.
    fn connecting_from_std(stream: std::net::TcpStream) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    /// Splits a stream for concurrent reading and writing (and turns Nagle off).
    fn split(stream: Self::Stream) -> (Self::Reader, Self::Writer);
    /// Reads some bytes; 0 means end of stream.
    fn read<'a>(
        reader: &'a mut Self::Reader,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Writes all of `data`.
    fn write_all<'a>(
        writer: &'a mut Self::Writer,
        data: &'a [u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'a;

    /// Resolves a host name.
    fn resolve(host: String, port: u16) -> impl Future<Output = std::io::Result<Vec<SocketAddr>>> + Send;
    /// Binds a UDP socket of `peer`'s family on an ephemeral port and connects it to `peer`.
    fn udp_connect(peer: SocketAddr) -> impl Future<Output = std::io::Result<Self::Udp>> + Send;
    /// Sends a datagram to the connected peer.
    fn udp_send<'a>(udp: &'a Self::Udp, data: &'a [u8]) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Receives a datagram from the connected peer.
    fn udp_recv<'a>(udp: &'a Self::Udp, buf: &'a mut [u8]) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Sends a datagram to `to` from an unconnected socket.
    fn udp_send_to<'a>(
        udp: &'a Self::Udp,
        data: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = std::io::Result<usize>> + Send + 'a;
    /// Receives a datagram and its sender on an unconnected socket.
    fn udp_recv_from<'a>(
        udp: &'a Self::Udp,
        buf: &'a mut [u8],
    ) -> impl Future<Output = std::io::Result<(usize, SocketAddr)>> + Send + 'a;
    /// Adopts a UDP socket set up with std (and socket2) options, already non-blocking; called
    /// from within the runtime (the DHT/uTP socket, with its kernel buffers, and the Local
    /// Service Discovery sockets).
    fn udp_from_std(socket: std::net::UdpSocket) -> std::io::Result<Self::Udp>;
}
