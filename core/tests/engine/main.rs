//! Whole-engine behaviour in a deterministic simulated world (see `support`): swarms of engines
//! exchanging real wire bytes over a virtual network, with in-memory disks and a fake tracker.
//! One test binary, its tests in a module per topic.

#[path = "../support/mod.rs"]
mod support;

mod checking;
mod discovery;
mod encryption;
mod holepunch;
mod hostile;
mod lifecycle;
mod limits;
mod peers;
mod pex;
mod requests;
mod streaming;
mod transfer;
mod utp;
