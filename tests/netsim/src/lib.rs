//! A payload-generic network emulator for deterministic test worlds, in the spirit of str0m's
//! `netem`: it knows nothing of BitTorrent or of Shoal, only of bytes, time and hosts.
//!
//! Time is virtual: a [`Duration`](std::time::Duration) since the world began. Nothing here
//! reads a clock or schedules anything; a world asks when things happen and keeps its own event
//! queue. Randomness comes from the caller's seeded RNG, so a world that draws from one RNG
//! keeps a single, reproducible draw order.
//!
//! The parts:
//! * [`Uplink`]: a host's upload link, which serialises every byte the host sends at its rate;
//! * [`Link`]: one direction of a stream connection (TCP-like: ordered, reliable), with the
//!   sender's kernel buffer, latency, the receiver's downlink and stalls while the path is cut.
//!   It is a small machine: [`Link::send`] hands it payloads, [`Link::poll_transmit`] puts them
//!   on the wire with their arrival times, [`Link::poll_timeout`] says when a full buffer next
//!   has room;
//! * [`DatagramPath`]: one direction of a UDP-like path (latency, jitter that reorders, loss,
//!   duplication), [`Bottleneck`]: a rate-limited drop-tail queue that flows share, and
//!   [`Timeline`]: the time-ordered event queue a datagram world runs on;
//! * [`Partitions`]: cuts between pairs of hosts, each until a deadline;
//! * [`Nat`]: a host's port-restricted cone NAT, which lets in only the datagrams of
//!   endpoints the host sent to (what BEP 55 hole punching gets through);
//! * [`Reads`]: how a receiver's reads cut the bytes of one send (a socket returns whatever has
//!   arrived);
//! * [`tracker::Tracker`]: the HTTP tracker both of Shoal's test worlds announce to.

mod datagram;
mod link;
mod nat;
mod partitions;
mod reads;
pub mod tracker;
mod uplink;

pub use datagram::{Bottleneck, DatagramPath, PathMtu, Timeline};
pub use link::{Link, Path, Transmit};
pub use nat::{Nat, NAT_LIFETIME};
pub use partitions::Partitions;
pub use reads::Reads;
pub use uplink::{serialisation, Uplink};
