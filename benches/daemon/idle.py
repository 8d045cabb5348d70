#!/usr/bin/env python3
"""A daemon with many idle torrents: RSS and GET /downloads latency.

    python3 benches/daemon/idle.py [--torrents 1000] [--shoal target/release/shoal]

Starts `shoal daemon` on loopback with a temporary state directory, adds N torrents (raw
.torrent bodies; 4 MiB of data each, no data on disk, no trackers, so they sit idle in
DOWNLOADING), then reports the daemon's RSS and the time of GET /downloads (median and p90 of 30
requests, with and without get_pieces), then restarts it and reports how long loading the N
checkpoints takes. Nothing leaves loopback (SHOAL_LOCAL_ONLY=1).
"""
import argparse, hashlib, json, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def torrent(i):
    pieces = b"".join(hashlib.sha1(b"%d-%d" % (i, p)).digest() for p in range(16))
    return bencode({"info": {"name": "idle-%05d.bin" % i, "length": 16 * 262144, "piece length": 262144, "pieces": pieces}})


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)), int(re.search(r"VmHWM:\s+(\d+)", text).group(1))


class Daemon:
    def __init__(self, shoal, state, key="bench"):
        env = dict(os.environ, SHOAL_LOCAL_ONLY="1")
        self.key = key
        self.proc = subprocess.Popen([shoal, "daemon", "--state-dir", state, "--http-port", "0", "--api-key", key],
                                     stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"REST API on http://([\d.]+:\d+)", line)
            if m:
                self.base = "http://" + m.group(1)
                return
        raise SystemExit("daemon did not start")

    def call(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=dict({"X-Api-Key": self.key}, **(headers or {})))
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def stop(self):
        self.call("PUT", "/shutdown")
        self.proc.wait(timeout=60)


def timed_gets(d, path, n=30):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        d.call("GET", path)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrents", type=int, default=1000)
    ap.add_argument("--shoal", default=os.path.join(os.path.dirname(__file__), "../../target/release/shoal"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shoal-idle-")
    try:
        state, dest = os.path.join(tmp, "state"), os.path.join(tmp, "dl")
        d = Daemon(a.shoal, state)
        t = time.perf_counter()
        for i in range(a.torrents):
            d.call("PUT", "/downloads?destination=" + dest, torrent(i), {"Content-Type": "application/x-bittorrent"})
        add_s = time.perf_counter() - t
        # Wait until every download is in the engine (no fixed sleep: poll the API).
        deadline = time.time() + 120
        while time.time() < deadline:
            dl = json.loads(d.call("GET", "/downloads"))["downloads"]
            if len(dl) == a.torrents and all(x["status"] == "DOWNLOADING" for x in dl):
                break
        med, p90 = timed_gets(d, "/downloads")
        medp, p90p = timed_gets(d, "/downloads?get_pieces=1")
        rss, hwm = rss_kib(d.proc.pid)
        d.stop()
        t = time.perf_counter()
        d = Daemon(a.shoal, state)
        while True:
            cp = json.loads(d.call("GET", "/downloads"))["checkpoints"]
            if cp["all_loaded"]:
                break
        load_s = time.perf_counter() - t
        rss2, _ = rss_kib(d.proc.pid)
        d.stop()
        print("| torrents | add all (s) | GET /downloads median / p90 (ms) | with get_pieces (ms) | RSS (MiB) | peak RSS (MiB) | restart+load (s) | RSS after restart (MiB) |")
        print("|---|---|---|---|---|---|---|---|")
        print("| %d | %.2f | %.1f / %.1f | %.1f / %.1f | %.1f | %.1f | %.2f | %.1f |" % (
            a.torrents, add_s, med, p90, medp, p90p, rss / 1024, hwm / 1024, load_s, rss2 / 1024))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
