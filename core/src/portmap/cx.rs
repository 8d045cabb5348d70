//! What every step of the mapper's two clients works with.

use crate::types::Instant;

use super::output::PortMapOutput;
use super::protocol::Protocol;

/// The wanted mappings, the request-id counter, the time and the output queue of one step.
pub(crate) struct Cx<'a> {
    /// Every wanted mapping; a client's slot `i` is `wanted[i]`.
    pub(crate) wanted: &'a [(Protocol, u16)],
    /// The last HTTP request id handed out.
    pub(crate) ids: &'a mut u64,
    pub(crate) now: Instant,
    pub(crate) out: &'a mut Vec<PortMapOutput>,
}

impl Cx<'_> {
    /// Queues an output.
    pub(crate) fn push(&mut self, o: PortMapOutput) {
        self.out.push(o);
    }
}
