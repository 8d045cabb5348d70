#!/usr/bin/env python3
"""Reproduces the slow mode of the 1 GiB leecher (see README.md, "The slow mode").

Downloads the cached 1 GiB payload from one python-libtorrent seeder six times with
`target/release/shoal` (a libtorrent leecher runs third), each time into a directory created
afresh under <cache>/runs, as run.py does, after a pause of `--pause` seconds (default 5). In
a VM with free page reporting (virtio-balloon), memory the guest freed during the pause has
gone back to the host, and Shoal's page-cache writes fault it back in: such runs take about
twice the CPU time. With `--prewarm`, a 1.25 GiB scratch file is written and deleted right
before each download (as run.py does), and every run is fast.
Run `run.py` once first so that the payload and torrent exist.

    python3 benches/swarm/slow_mode.py [--pause S] [--prewarm]
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOAL = REPO / "target" / "release" / "shoal"
CACHE = Path(os.environ.get("SHOAL_BENCH_DIR", "/tmp/shoal-bench"))
TORRENT = CACHE / "torrents" / "single.torrent"
DATA = CACHE / "data"
# Loopback only: no DHT routers, no LSD multicast.
ENV = dict(os.environ, SHOAL_LOCAL_ONLY="1", PYTHONUNBUFFERED="1")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    prewarm = "--prewarm" in sys.argv
    pause = float(sys.argv[sys.argv.index("--pause") + 1]) if "--pause" in sys.argv else 5.0
    port = free_port()
    ready = CACHE / "logs" / "slow-mode-seed.out"
    ready.parent.mkdir(parents=True, exist_ok=True)
    seed = subprocess.Popen(["/usr/bin/python3", str(REPO / "tests/scripts/lt_seed.py"), "--torrent", str(TORRENT),
                             "--save-path", str(DATA), "--port", str(port), "--no-wait-tracker"],
                            stdout=open(ready, "w"), stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in ready.read_text():
            if time.monotonic() > deadline or seed.poll() is not None:
                sys.exit("the libtorrent seeder did not start")
            time.sleep(0.1)
        for i, client in enumerate(["shoal", "shoal", "libtorrent", "shoal", "shoal", "shoal"]):
            runs = CACHE / "runs"
            out = runs / "slow-mode"
            shutil.rmtree(runs, ignore_errors=True)
            os.sync()
            out.mkdir(parents=True)
            time.sleep(pause)
            if prewarm:
                scratch = runs / "prewarm.bin"
                with open(scratch, "wb") as f:
                    for _ in range(1280):
                        f.write(bytes(1 << 20))
                scratch.unlink()
            if client == "shoal":
                argv = [str(SHOAL), "download", str(TORRENT), "-o", str(out), "--bind", "127.0.0.1",
                        "--listen-port", str(free_port()), "--peer", "127.0.0.1:%d" % port]
            else:
                argv = ["/usr/bin/python3", str(REPO / "tests/scripts/lt_leech.py"), "--torrent", str(TORRENT),
                        "--save-path", str(out), "--port", str(free_port()), "--peer", "127.0.0.1:%d" % port]
            t0 = time.monotonic()
            child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
            _, status, ru = os.wait4(child.pid, 0)
            print("%d %-10s wall %.2f s  cpu %.2f s  rss %.0f MiB  exit %d"
                  % (i, client, time.monotonic() - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024,
                     os.waitstatus_to_exitcode(status)), flush=True)
    finally:
        seed.terminate()
        seed.wait()


if __name__ == "__main__":
    main()
