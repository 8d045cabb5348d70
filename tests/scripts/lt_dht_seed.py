#!/usr/bin/python3
"""Seed a torrent with libtorrent into a small DHT on loopback, until killed.

Starts one seeding session on --port and one DHT-only session per --node-port; each session's
DHT knows only the others (127.0.0.1), never the public routers. Prints `ready` on stdout once
the data is checked and seeding and another node has stored the seeder's DHT announce (so a
get_peers for the info-hash finds it), then `dht-nodes 127.0.0.1:P,...`: every session's DHT
address, for the client under test to bootstrap from.
"""
import argparse
import signal
import sys
import time

import libtorrent as lt

from ltcommon import add_torrent, dht_loopback_session, drain_alerts, log


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True, help="dir holding the torrent's files")
    p.add_argument("--port", type=int, required=True, help="the seeder's TCP and DHT (UDP) port")
    p.add_argument("--node-port", type=int, action="append", default=[],
                   help="port of an extra DHT-only session (repeatable)")
    p.add_argument("--extra-node", action="append", default=[],
                   help="HOST:PORT of another DHT node every session starts from (repeatable)")
    p.add_argument("--isolated", action="store_true",
                   help="sessions are not told about each other: they start from --extra-node only")
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument("--log-packets", action="store_true", help="log every DHT packet (debugging)")
    args = p.parse_args()

    ports = [args.port] + args.node_port
    sessions = []
    for port in ports:
        others = [] if args.isolated else [q for q in ports if q != port]
        ses = dht_loopback_session(port, others, seed=(port == args.port))
        for node in args.extra_node:
            host, _, node_port = node.rpartition(":")
            ses.add_dht_node((host, int(node_port)))
        if args.log_packets:
            mask = ses.get_settings()["alert_mask"] | lt.alert.category_t.dht_log_notification
            ses.apply_settings({"alert_mask": mask})
        sessions.append(ses)
    seeder = sessions[0]
    h = add_torrent(seeder, args.torrent, args.save_path)
    info_hash = str(h.info_hash())
    log("seeding %s on port %d; DHT nodes on %s" % (info_hash, args.port, ports))

    def drain_all():
        """Logs every session's alerts; returns whether a node stored our announce."""
        stored = False
        for port, ses in zip(ports, sessions):
            ses.wait_for_alert(20)
            for a in ses.pop_alerts():
                log("[%d] %s: %s" % (port, type(a).__name__, a.message()))
                if isinstance(a, lt.dht_stats_alert):
                    nodes = sum(b["num_nodes"] for b in a.routing_table)
                    log("[%d] DHT routing table: %d nodes" % (port, nodes))
                if isinstance(a, lt.dht_announce_alert) and str(a.info_hash) == info_hash:
                    stored = True
        return stored

    def post_stats():
        """Has every session report its routing table (logged as dht_stats_alert)."""
        for ses in sessions:
            ses.post_dht_stats()

    announced = False
    forced = 0.0
    deadline = time.monotonic() + args.ready_timeout
    while True:
        if drain_all():
            announced = True
        st = h.status()
        if st.is_seeding and announced:
            break
        if st.errc.value() != 0:
            log("torrent error: %s" % st.errc.message())
            return 1
        now = time.monotonic()
        # libtorrent announces a new torrent to the DHT by itself, but only once its routing
        # table has nodes: ask again every few seconds until another node stored it.
        if st.is_seeding and now - forced > 3.0:
            forced = now
            log("no node has stored the announce yet: announcing to the DHT")
            h.force_dht_announce()
            post_stats()
        if now > deadline:
            log("not ready after %ss: seeding=%s announced=%s" % (args.ready_timeout, st.is_seeding, announced))
            return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("ready", flush=True)
    print("dht-nodes " + ",".join("127.0.0.1:%d" % q for q in ports), flush=True)
    last = 0.0
    while not stop:
        drain_all()
        now = time.monotonic()
        if now - last > 2.0:
            st = h.status()
            log("status: peers=%d uploaded=%d" % (st.num_peers, st.total_upload))
            post_stats()
            last = now
    log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
