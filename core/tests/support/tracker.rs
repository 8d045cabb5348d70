//! The fake HTTP tracker every test torrent names (`shoal_netsim`'s, shared with the
//! simulator), and the announces engines send it.

use shoal_core::JobId;

use super::node::NodeId;
use super::world::{Ev, World};

/// The one tracker every test torrent names; [`World::tracker`] answers it.
pub(crate) const TRACKER: &str = "http://tracker.sim/announce";

impl World {
    /// Node `a` GETs `url`: the tracker answers after its time, unless it is down.
    pub(super) fn tracker_get(&mut self, a: NodeId, id: JobId, url: String) {
        let now = self.now;
        self.nodes[a].tracker_gets.push((now, url.clone()));
        if !self.tracker_down {
            let body = self.tracker.http(self.nodes[a].addr.ip(), &url);
            self.schedule(now + self.timing.tracker, Ev::Http { node: a, job: id, body });
        }
    }
}
