//! Test harness for Shoal's cross-crate tests.
//!
//! The interop tests run the `shoal` binary against BitTorrent programs nobody here wrote
//! (python3-libtorrent, transmission-cli, aria2c) and a real tracker (opentracker), all on
//! loopback. Nothing in this crate may send a packet anywhere but 127.0.0.1: every process it
//! starts is bound to loopback and has DHT, local discovery and port mapping switched off (and
//! PEX, except libtorrent's, which only ever names the loopback peers it is connected to).
//!
//! Rules the harness follows so tests can run in parallel and fail readably:
//! * each test owns a [`TestDir`] (temp dir, logs) and allocates its own ports ([`free_port`]);
//! * every child process is a [`Proc`]: its stdout/stderr go to files in the test dir, it is
//!   killed (process group included) when dropped, and its logs are printed if the test fails;
//! * nothing sleeps to synchronise: waits are on events (exit, marker file, open port, tracker
//!   state) through [`wait_for`] with a deadline.

pub mod bencode;
pub mod daemon;
pub mod data;
pub mod magnet;
pub mod netns;
pub mod peers;
pub mod proc;
pub mod shoal;
pub mod sim;
pub mod squat;
pub mod tracker;
pub mod tribler_gui;
pub mod wait;
pub mod workdir;

pub use bencode::{InfoHash, Value};
pub use data::{assert_same_tree, compare_trees, Compare, FileSpec};
pub use proc::Proc;
pub use tracker::Opentracker;
pub use wait::{free_port, wait_for, wait_port_open};
pub use workdir::{package_dir, TestDir};
