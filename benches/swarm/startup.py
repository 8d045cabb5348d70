#!/usr/bin/python3
"""Start-up latency of `shoal download`: from process start to its first block request.

A scripted seeder on 127.0.0.1 answers the handshake at once (bitfield: everything, unchoke)
and notes when the first `request` arrives. Prints the median over --runs.

    benches/swarm/startup.py [--runs 10] [--shoal target/release/shoal]
"""
import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def seeder(listener, info, result):
    conn, _ = listener.accept()
    conn.settimeout(10)
    hs = b""
    while len(hs) < 68:
        chunk = conn.recv(68 - len(hs))
        if not chunk:
            return
        hs += chunk
    info_hash = hs[28:48]
    conn.sendall(b"\x13BitTorrent protocol" + b"\x00" * 8 + info_hash + b"-XX0000-000000000000")
    pieces = info["pieces"]
    bitfield = bytearray(b"\xff" * ((pieces + 7) // 8))
    spare = len(bitfield) * 8 - pieces
    if spare:
        bitfield[-1] &= (0xFF << spare) & 0xFF
    conn.sendall(struct.pack(">IB", 1 + len(bitfield), 5) + bytes(bitfield))
    conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
    buf = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
        while len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if len(buf) < 4 + n:
                break
            msg, buf = buf[4 : 4 + n], buf[4 + n :]
            if n > 0 and msg[0] == 6:
                result.append(time.monotonic())
                conn.close()
                return


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--shoal", default=os.path.join(ROOT, "target/release/shoal"))
    args = p.parse_args()
    if not os.path.exists(args.shoal):
        sys.exit("build it first: cargo build --release -p shoal-api")
    work = tempfile.mkdtemp(prefix="shoal-startup-")
    try:
        data = os.path.join(work, "payload.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(4 << 20))
        torrent = os.path.join(work, "payload.torrent")
        subprocess.run([args.shoal, "create", data, "-o", torrent, "--piece-size", "262144"],
                       check=True, stdout=subprocess.DEVNULL)
        times = []
        for i in range(args.runs):
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            result = []
            t = threading.Thread(target=seeder, args=(listener, {"pieces": 16}, result), daemon=True)
            t.start()
            out = os.path.join(work, "out%d" % i)
            start = time.monotonic()
            proc = subprocess.Popen([args.shoal, "download", torrent, "-o", out, "--bind", "127.0.0.1",
                                     "--listen-port", "0", "--peer", "127.0.0.1:%d" % port],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=dict(os.environ, SHOAL_LOCAL_ONLY="1"))
            t.join(10)
            proc.terminate()
            proc.wait(10)
            listener.close()
            if result:
                times.append(result[0] - start)
        if not times:
            sys.exit("no request was ever received")
        ms = sorted(x * 1000 for x in times)
        print("start-up to first request: median %.1f ms, min %.1f ms, max %.1f ms (%d runs)"
              % (statistics.median(ms), ms[0], ms[-1], len(ms)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
