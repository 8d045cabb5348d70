#!/usr/bin/python3
"""Seed a torrent with libtorrent on loopback until killed.

Prints `ready` on stdout once the data is checked and seeding, and (unless --no-wait-tracker or
the torrent has no trackers) the tracker has answered an announce.
"""
import argparse
import signal
import sys
import time

import libtorrent as lt

from ltcommon import add_torrent, drain_alerts, log, loopback_session, parse_peer, stop_session


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True, help="dir holding the torrent's files")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peer", action="append", default=[], help="host:port to connect to")
    p.add_argument("--no-wait-tracker", action="store_true")
    p.add_argument("--ready-timeout", type=float, default=120.0)
    p.add_argument("--upload-rate", type=int, default=0,
                   help="upload limit of the torrent in bytes/s (0, the default: unlimited)")
    p.add_argument("--no-pex", action="store_true",
                   help="neither send nor take peer exchange (ut_pex) messages for the torrent")
    args = p.parse_args()

    ses = loopback_session(args.port, seed=True)
    h = add_torrent(ses, args.torrent, args.save_path)
    if args.no_pex:
        h.set_flags(lt.torrent_flags.disable_pex)
    if args.upload_rate > 0:
        # A per-torrent limit: unlike the session's, it also holds for peers on loopback.
        h.set_upload_limit(args.upload_rate)
    wait_tracker = not args.no_wait_tracker and len(h.trackers()) > 0
    tracker_ok = False
    deadline = time.monotonic() + args.ready_timeout
    while True:
        for a in drain_alerts(ses):
            if isinstance(a, lt.tracker_reply_alert):
                tracker_ok = True
        st = h.status()
        if st.is_seeding and (tracker_ok or not wait_tracker):
            break
        if st.errc.value() != 0:
            log("torrent error: %s" % st.errc.message())
            return 1
        if time.monotonic() > deadline:
            log("not ready after %ss: state=%s seeding=%s tracker_ok=%s"
                % (args.ready_timeout, st.state, st.is_seeding, tracker_ok))
            return 2
    for peer in args.peer:
        h.connect_peer(parse_peer(peer))
    # SIGTERM ends the loop cleanly, so the session sends `stopped` to the tracker.
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("ready", flush=True)
    last = 0.0
    while not stop:
        drain_alerts(ses, 200)
        now = time.monotonic()
        if now - last > 2.0:
            st = h.status()
            log("status: peers=%d uploaded=%d" % (st.num_peers, st.total_upload))
            last = now
    log("stopping")
    stop_session(ses, h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
