//! Session-wide scheduling after every input: check slots, rate-limit fairness between
//! torrents, upload release, LSD and DHT pumping, dialing and dropping removed torrents.

use super::{dht, Ctx, Engine, Event, Lifecycle, Output, Torrent, TorrentEvent, UdpIo};
use crate::types::{ExchangeId, InfoHash, Instant, TorrentId};

impl Engine {
    /// Sends blocks that waited for upload tokens, one per peer in turn, while tokens last.
    pub(super) fn release_uploads(&mut self, now: Instant) {
        while !self.limits.up_waiting.is_empty() && self.limits.up.has_tokens(now) {
            let Some((t, conn)) = self.limits.up_waiting.pop_front() else { break };
            let more = self.on_torrent(t, now, |tor, cx| tor.release_upload(conn, cx)) == Some(true);
            if more {
                self.limits.up_waiting.push_back((t, conn));
            }
        }
    }

    /// Lets torrents that ran out of download tokens request again, starting after the one
    /// served first last time so no torrent always goes first.
    pub(super) fn refill_requests(&mut self, now: Instant) {
        if self.limits.down_starved.is_empty() || !self.limits.down.has_tokens(now) {
            return;
        }
        let cursor = self.limits.down_cursor;
        let starved = std::mem::take(&mut self.limits.down_starved);
        let (before, after): (Vec<TorrentId>, Vec<TorrentId>) = starved.into_iter().partition(|t| *t <= cursor);
        let mut order = after.into_iter().chain(before);
        for id in order.by_ref() {
            self.on_torrent(id, now, |t, cx| {
                t.refill_requests(cx);
                t.flush(cx.out);
            });
            self.limits.down_cursor = id;
            if !self.limits.down.has_tokens(now) {
                break;
            }
        }
        // Torrents not reached wait for the next tokens.
        self.limits.down_starved.extend(order);
    }

    /// Hands free check slots to queued torrents, oldest ticket first. Costs O(torrents), and
    /// only runs after a torrent entered or left the queue or a check.
    pub(super) fn schedule_checks(&mut self, now: Instant) {
        while self.limits.checks_changed {
            self.limits.checks_changed = false;
            let mut checking = self.torrents.values().filter(|t| t.is_checking()).count();
            let mut queued: Vec<(u64, TorrentId)> =
                self.torrents.iter().filter_map(|(id, t)| t.check_ticket().map(|k| (k, *id))).collect();
            queued.sort();
            for (_, id) in queued {
                if checking >= self.config.max_checking_torrents.max(1) {
                    break;
                }
                // A check with nothing to read ends at once and sets `checks_changed` again.
                let started = self.on_torrent(id, now, |t, cx| {
                    t.begin_check(cx);
                    t.is_checking()
                });
                checking += usize::from(started == Some(true));
            }
        }
    }

    /// Sends the Local Service Discovery announces that are due, for both groups.
    pub(super) fn announce_lsd(&mut self, now: Instant) {
        let Some(lsd) = &mut self.lsd else { return };
        let active: Vec<InfoHash> = self.torrents.values().filter(|t| t.wants_dht()).map(|t| t.info_hash).collect();
        for batch in lsd.poll_announces(&active, now) {
            for v6 in [false, true] {
                let data = crate::lsd::encode(self.config.listen_port, &batch, lsd.cookie(), v6);
                self.out.push(Output::Udp(UdpIo::Lsd { data, v6 }));
            }
        }
    }

    /// Passes the DHT's datagrams and resolutions on, and its peers to their torrents; returns
    /// whether any peers arrived.
    pub(super) fn pump_dht(&mut self, now: Instant) -> bool {
        let Some(link) = self.dht.as_mut() else { return false };
        let mut got_peers = false;
        while let Some(action) = link.poll(self.config.net_policy(), now) {
            match action {
                dht::Action::Output(o) => self.out.push(o),
                dht::Action::Peers(t, peers) => {
                    if let Some(torrent) = self.torrents.get_mut(&t) {
                        torrent.add_candidates(peers, &self.config);
                        got_peers = true;
                    }
                }
                dht::Action::Scraped(id, info_hash, swarm) => {
                    self.health.handle_dht(id, &swarm, &mut self.out);
                    self.out.event(Event::DhtScrape { id, info_hash, swarm });
                }
            }
        }
        got_peers
    }

    /// Brings the routing table up to date with the connections torrents dialled and closed.
    pub(super) fn route_connections(&mut self, now: Instant) {
        let encrypting = self.config.encryption.accepts_encrypted();
        let mut dialed = Vec::new();
        for (id, torrent) in self.torrents.iter_mut() {
            for event in torrent.poll_events() {
                match event {
                    TorrentEvent::Dialed(conn) => {
                        self.conns.insert(conn, *id);
                        if encrypting {
                            dialed.push((*id, conn));
                        }
                    }
                    TorrentEvent::Closed(conn) => {
                        self.conns.remove(&conn);
                    }
                };
            }
        }
        for (t, conn) in dialed {
            self.link_dial(t, conn, now);
        }
    }

    /// Common work after any input: connection attempts, tracker announces, flushing sends,
    /// routing-table upkeep, dropping removed torrents.
    pub(super) fn after_input(&mut self, touched: Option<TorrentId>, now: Instant) {
        if let Some(link) = &mut self.utp {
            link.set_now(now);
        }
        // Peers from the DHT may concern any torrent.
        let touched = if self.pump_dht(now) { None } else { touched };
        self.schedule_checks(now);
        self.refill_requests(now);
        self.release_uploads(now);
        self.limits.conn_room = self.config.max_connections.saturating_sub(self.conns.len());
        let drive = |torrent: &mut Torrent, cx: &mut Ctx<'_>| {
            torrent.connect_more(cx);
            torrent.drive_trackers(cx);
            torrent.flush(cx.out);
        };
        match touched {
            Some(t) => {
                self.on_torrent(t, now, drive);
            }
            None => self.each_torrent(now, drive),
        }
        self.route_connections(now);
        let deadline_passed = matches!(self.lifecycle, Lifecycle::Stopping { deadline } if now >= deadline);
        let gone: Vec<TorrentId> = self
            .torrents
            .iter()
            .filter(|(_, t)| t.is_removable() || (deadline_passed && t.is_removing()))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(t) = self.torrents.remove(&id) {
                self.by_hash.remove(&t.info_hash);
                self.out.forget_torrent(id);
                for job in t.udp_sockets() {
                    self.out.push(Output::Udp(UdpIo::EndExchange { exchange: ExchangeId::of(job) }));
                }
                self.out.event(Event::Removed { torrent: id });
            }
        }
        if matches!(self.lifecycle, Lifecycle::Stopping { .. }) && self.torrents.is_empty() {
            self.lifecycle = Lifecycle::Stopped;
            self.out.event(Event::ShutdownComplete);
        }
    }
}
