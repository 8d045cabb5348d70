//! The world's hosts and their lifecycle: added with their access links, started, crashed or
//! left, rejoined, and checkpoints of their resume data. (What a host is: [`super::host`].)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use shoal_core::{AddTorrent, Engine};
use shoal_netsim::Uplink;

use super::event::Ev;
use super::host::{EngineHost, Host, HostKind, NetParams};
use super::net;
use super::state::World;

fn ip_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8 + 1, 1))
}

impl World {
    pub(super) fn push_host(&mut self, net: NetParams, kind: HostKind) -> usize {
        let i = self.hosts.len();
        let addr = SocketAddr::new(ip_of(i), 6881);
        self.by_addr.insert(addr, i);
        let uplink = Uplink::new(Some(net.up.max(1)));
        let downlink = Uplink::new(Some(net.down.max(1)));
        self.hosts.push(Host { addr, net, online: false, epoch: 0, uplink, downlink, nat: None, kind });
        i
    }

    pub(super) fn draw_net(&self, rng: &mut ChaCha8Rng, adversary: bool) -> NetParams {
        let (lo, hi) = self.params.bandwidth;
        let up = rng.random_range(lo..=hi);
        NetParams {
            up,
            down: up * rng.random_range(2..=8),
            up_lat: Duration::from_micros(rng.random_range(2_000..40_000)),
            down_lat: Duration::from_micros(rng.random_range(2_000..40_000)),
            sndbuf: if adversary { 1 << 20 } else { rng.random_range(16..=256) * 1024 },
        }
    }

    /// The honest engine host `i`.
    pub fn engine_host(&self, i: usize) -> Option<&EngineHost> {
        match &self.hosts[i].kind {
            HostKind::Engine(e) => Some(e),
            HostKind::Adversary(_) => None,
        }
    }

    pub(super) fn eh(&mut self, i: usize) -> &mut EngineHost {
        match &mut self.hosts[i].kind {
            HostKind::Engine(e) => e,
            HostKind::Adversary(_) => unreachable!("host {i} is an engine host"),
        }
    }

    /// Whether every honest host is up and holds the whole torrent.
    pub fn all_complete(&self) -> bool {
        (0..self.params.peers).all(|i| self.is_complete(i))
    }

    /// Whether honest host `i` is up, finished and holds the source bytes.
    pub fn is_complete(&self, i: usize) -> bool {
        let Some(h) = self.engine_host(i) else { return false };
        self.hosts[i].online && h.finished_at.is_some() && h.disk.is_complete(&self.tt)
    }

    /// One line about honest host `i`, for failure reports.
    pub fn host_summary(&self, i: usize) -> String {
        let Some(h) = self.engine_host(i) else { return format!("host {i}: adversary") };
        let (Some(e), Some(t)) = (&h.engine, h.torrent) else { return format!("host {i}: down") };
        let st = e.stats(t).expect("torrent exists");
        let peers = e.peers(t);
        let unchoked = peers.iter().filter(|p| !p.peer_choking).count();
        let interesting = peers.iter().filter(|p| p.am_interested).count();
        // Which of `is_complete`'s conditions fails, when the engine's own view disagrees.
        let not_source: Vec<u32> = (0..self.tt.pieces()).filter(|p| !h.disk.is_source(*p)).take(8).collect();
        format!(
            "host {i}: {:?} have {}/{} peers {} (unchoking us {unchoked}, we want {interesting}) seeds {} \
             candidates {} down {} up {} wasted {} restarts {} online {} finished {} pieces not on disk {:?}",
            st.state,
            st.pieces_have,
            st.pieces_total,
            st.peers,
            st.seeds,
            st.candidates,
            st.downloaded,
            st.uploaded,
            st.wasted,
            h.restarts,
            self.hosts[i].online,
            h.finished_at.is_some(),
            not_source
        )
    }

    pub(super) fn alive(&self, host: usize, epoch: u32) -> bool {
        self.hosts[host].online && self.hosts[host].epoch == epoch
    }

    // ---- hosts coming and going ----

    pub(super) fn start_engine(&mut self, host: usize) {
        if self.hosts[host].online {
            return;
        }
        let now = self.now;
        self.hosts[host].online = true;
        self.hosts[host].epoch += 1;
        self.hosts[host].uplink.reset(net::virtual_time(now));
        let epoch = self.hosts[host].epoch;
        let seed = self.params.seed.wrapping_mul(0x9e37_79b9).wrapping_add((host as u64) << 20 | epoch as u64);
        let mut config = self.config.clone();
        config.listen_port = self.hosts[host].addr.port();
        config.utp = self.speaks_utp(host);
        config.holepunch = self.params.holepunch;
        let meta = self.tt.meta.clone();
        let restart = epoch > 1;
        let h = self.eh(host);
        let mut engine = Engine::new(config, seed, now);
        let params = if h.seeder && !restart {
            AddTorrent::new(meta) // checks what is on disk: everything
        } else {
            AddTorrent { have: Some(h.resume.clone()), check_existing: false, ..AddTorrent::new(meta) }
        };
        h.torrent = Some(engine.add_torrent(params, now).expect("the sim torrent is valid"));
        h.engine = Some(engine);
        h.timer_at = None;
        if restart {
            h.restarts += 1;
        }
        self.drain(host);
    }

    pub(super) fn crash(&mut self, host: usize, clean: bool) {
        if !self.hosts[host].online || !self.faults_on {
            return;
        }
        self.count(if clean { "leaves" } else { "crashes" });
        let tt = self.tt.clone();
        let h = self.eh(host);
        if clean {
            h.disk.sync();
            if let (Some(e), Some(t)) = (&h.engine, h.torrent) {
                h.resume = e.stats(t).expect("torrent exists").have;
            }
        } else {
            h.disk.crash(&tt);
        }
        h.engine = None;
        h.jobs.clear();
        h.job_bytes = 0;
        h.reads = 0;
        h.conns.clear();
        h.finished_at = None;
        self.hosts[host].online = false;
        let mine: Vec<u64> = (0..self.conns.len() as u64)
            .filter(|c| self.conn(*c).is_some_and(|c| c.ends.iter().flatten().any(|e| e.host == host)))
            .collect();
        for c in mine {
            self.reset(c);
        }
        let back = Duration::from_millis(self.rng.random_range(2000..40_000));
        self.schedule(back, Ev::Rejoin { host });
    }

    pub(super) fn checkpoint(&mut self) {
        // Every second: bounds that need a snapshot. Every ten: resume data (fsync first).
        let save = self.now.as_micros() % 10_000_000 < 1_000_000;
        for i in 0..self.params.peers {
            if !self.hosts[i].online {
                continue;
            }
            let bound = self.bounds.peers;
            let h = self.eh(i);
            let (Some(e), Some(t)) = (&h.engine, h.torrent) else { continue };
            let stats = e.stats(t).expect("torrent exists");
            let peers = stats.peers;
            let have = save.then_some(stats.have);
            if let Some(have) = have {
                h.disk.sync();
                h.resume = have;
            }
            if peers > bound {
                self.violation(format!("host {i}: {peers} peers connected, bound {bound}"));
            }
        }
        self.schedule(Duration::from_secs(1), Ev::Checkpoint);
    }
}
