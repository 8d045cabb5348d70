//! Typed handles: which engine ([`NodeId`]) and which hand-driven peer ([`RawId`]) of a world.

use std::fmt;

/// One engine of a world, numbered in the order it was added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(pub(super) usize);

/// The bare number: trace lines and failure messages name a node by it.
impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A hand-driven peer of a world, numbered in the order it connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RawId(pub(super) usize);
