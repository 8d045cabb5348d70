"""Shared helpers for the libtorrent test scripts: a loopback-only session and alert logging.

Every session made here listens on 127.0.0.1 only and has DHT, local service discovery, UPnP,
NAT-PMP and uTP switched off, so nothing leaves the machine.

`LT_SETTINGS` (a JSON object of libtorrent settings_pack names) overrides those settings for a
test that needs another mode: forced encryption (`out_enc_policy`/`in_enc_policy` 0,
`allowed_enc_level` 1 plaintext, 2 RC4, 3 both), uTP only (`enable_outgoing_tcp` and
`enable_incoming_tcp` false, `enable_*_utp` true), or another listen address inside a test's
own network namespace (`listen_interfaces`, `outgoing_interfaces`).
"""
import json
import os
import sys
import time

import libtorrent as lt

ALERT_MASK = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.peer_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.connect_notification
    | lt.alert.category_t.performance_warning
)


def loopback_session(port, seed=False):
    """A session bound to 127.0.0.1:port that talks to nothing but loopback."""
    settings = lt.high_performance_seed() if seed else lt.default_settings()
    settings.update(loopback_session_settings(port))
    return lt.session(settings)


def loopback_session_settings(port):
    """The settings of loopback_session (DHT off), to build other sessions on, with the
    overrides of `LT_SETTINGS`."""
    settings = base_settings(port)
    settings.update(json.loads(os.environ.get("LT_SETTINGS") or "{}"))
    return settings


def base_settings(port):
    """Loopback only, DHT/LSD/UPnP/NAT-PMP/uTP off."""
    return {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "outgoing_interfaces": "lo",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "allow_multiple_connections_per_ip": True,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "alert_mask": ALERT_MASK,
        "user_agent": "shoal-tests/libtorrent",
    }


def add_torrent(ses, torrent, save_path):
    """Adds a .torrent file with data in save_path; returns the handle."""
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    return ses.add_torrent(atp)


def parse_peer(text):
    """'host:port' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host, int(port)


def log(msg):
    print("%.3f %s" % (time.monotonic(), msg), file=sys.stderr, flush=True)


# Tracker announces sent and not yet answered (updated by drain_alerts).
_pending_announces = [0]


def drain_alerts(ses, timeout_ms=100):
    """Waits up to timeout_ms for alerts, logs them to stderr and returns them."""
    ses.wait_for_alert(timeout_ms)
    alerts = ses.pop_alerts()
    for a in alerts:
        log("%s: %s" % (type(a).__name__, a.message()))
        if isinstance(a, lt.tracker_announce_alert):
            _pending_announces[0] += 1
        elif isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
            _pending_announces[0] = max(0, _pending_announces[0] - 1)
    return alerts


def stop_session(ses, h, timeout=5.0):
    """Pauses the torrent so it announces `stopped`, and waits for the tracker to answer (at
    most timeout seconds) before the session is torn down."""
    deadline = time.monotonic() + timeout
    # libtorrent skips `stopped` if it pauses while another announce (e.g. `completed`) is in
    # flight: let that one finish first.
    while _pending_announces[0] > 0 and time.monotonic() < deadline:
        drain_alerts(ses)
    announcing = len(h.trackers()) > 0
    ses.pause()
    while announcing and time.monotonic() < deadline:
        for a in drain_alerts(ses):
            if isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
                announcing = False
    log("session stopped")


def dht_loopback_session(port, other_ports, seed=False):
    """A loopback session like loopback_session, but with the DHT on and its network made of
    the other loopback nodes only (127.0.0.1:p for p in other_ports), never the public routers.

    The other nodes are added as plain DHT nodes, not as bootstrap routers: libtorrent keeps
    routers out of its routing table, so nodes that only know each other as routers answer
    every find_node with an empty `nodes`. The restrictions that make sense on the internet
    (one node per IP in the routing table and in a search, BEP 42 node ids, the per-IP packet
    rate after which a node is banned) are off, since every node here shares 127.0.0.1."""
    settings = lt.high_performance_seed() if seed else lt.default_settings()
    # The DHT must never start with libtorrent's default routers: no bootstrap host at all.
    base = loopback_session_settings(port)
    base.update({
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_block_ratelimit": 100000,
        # Not 0: libtorrent 2.0.8 dies of SIGFPE (a division by zero) with an unlimited DHT rate.
        "dht_upload_rate_limit": 1000000,
        "alert_mask": ALERT_MASK | lt.alert.category_t.dht_notification,
    })
    settings.update(base)
    ses = lt.session(settings)
    for p in other_ports:
        ses.add_dht_node(("127.0.0.1", p))
    return ses
