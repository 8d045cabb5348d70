#!/usr/bin/python3
"""Download a torrent with libtorrent on loopback; exit 0 when complete, 2 on timeout."""
import argparse
import sys
import time

import libtorrent as lt

from ltcommon import add_torrent, drain_alerts, log, loopback_session, parse_peer, stop_session


def wait_tracker_reply(ses, h, timeout=5.0):
    """Waits for the next tracker reply (or error) if the torrent has trackers."""
    deadline = time.monotonic() + timeout
    while h.trackers() and time.monotonic() < deadline:
        for a in drain_alerts(ses):
            if isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
                return


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--torrent", required=True)
    p.add_argument("--save-path", required=True, help="dir to download into")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--peer", action="append", default=[], help="host:port to connect to")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--upload-rate", type=int, default=0,
                   help="upload limit of the torrent in bytes/s (0, the default: unlimited)")
    p.add_argument("--download-rate", type=int, default=0,
                   help="download limit of the torrent in bytes/s (0, the default: unlimited)")
    args = p.parse_args()

    ses = loopback_session(args.port)
    h = add_torrent(ses, args.torrent, args.save_path)
    # Per-torrent limits: unlike the session's, they also hold for peers on loopback.
    if args.upload_rate > 0:
        h.set_upload_limit(args.upload_rate)
    if args.download_rate > 0:
        h.set_download_limit(args.download_rate)
    peers = [parse_peer(x) for x in args.peer]
    for peer in peers:
        h.connect_peer(peer)
    start = time.monotonic()
    deadline = start + args.timeout
    last = 0.0
    reconnect = start + 5.0
    while True:
        drain_alerts(ses)
        st = h.status()
        if st.is_seeding:
            log("finished in %.2fs, downloaded %d bytes" % (time.monotonic() - start,
                                                           st.total_payload_download))
            print("finished", flush=True)
            # libtorrent now announces `completed`; pausing before its reply would drop the
            # `stopped` announce, so wait for the reply first.
            wait_tracker_reply(ses, h)
            break
        if st.errc.value() != 0:
            log("torrent error: %s" % st.errc.message())
            return 1
        now = time.monotonic()
        if now > deadline:
            log("timeout after %ss: state=%s progress=%.4f peers=%d"
                % (args.timeout, st.state, st.progress, st.num_peers))
            return 2
        if now - last > 2.0:
            log("status: state=%s progress=%.4f peers=%d" % (st.state, st.progress, st.num_peers))
            last = now
        # A peer given on the command line may not have been listening yet: retry it.
        if peers and st.num_peers == 0 and now > reconnect:
            for peer in peers:
                h.connect_peer(peer)
            reconnect = now + 5.0
    stop_session(ses, h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
