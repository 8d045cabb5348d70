#!/usr/bin/env python3
"""The daemon's memory with a big metadata store: VmRSS and VmHWM of `shoal daemon` serving
searches over 1,000,000 torrents, and the latency of those searches over HTTP.

    python3 benches/daemon/store_rss.py [--torrents 1000000] [--state DIR] [--requests 300]
                                        [--shoal target/release/shoal]

Without --state, the store is built first by the store benchmark, with the daemon's own store
code (`cargo bench -p shoal-benches --bench store -- N --keep DIR`, which also prints its own
figures), in a temporary state directory that is removed afterwards. With --state, a store built
before (`--keep DIR`) is used as it is. Then `shoal daemon` starts on it (loopback only,
SHOAL_LOCAL_ONLY=1) and gets, one after the other, the requests Tribler's GUI makes: a local
search for a word of a stored name (family filter on, with the total), completions of its first
three letters, and the popular torrents. Words are picked from a sample of the stored names, so
common words come up as often as in the names. Issue #15's target: RSS < 300 MiB.
"""
import argparse, os, random, re, shutil, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))


def status_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    return {k: int(re.search(r"%s:\s+(\d+)" % k, text).group(1)) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


class Daemon:
    def __init__(self, shoal, state, key="bench"):
        env = dict(os.environ, SHOAL_LOCAL_ONLY="1")
        self.key = key
        self.proc = subprocess.Popen([shoal, "daemon", "--state-dir", state, "--http-port", "0", "--api-key", key],
                                     stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"REST API on http://([\d.]+:\d+)", line)
            if m:
                self.base = "http://" + m.group(1)
                return
        raise SystemExit("the daemon did not report its REST port")

    def get(self, path):
        req = urllib.request.Request(self.base + path, headers={"X-Api-Key": self.key})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    def stop(self):
        req = urllib.request.Request(self.base + "/shutdown", method="PUT", headers={"X-Api-Key": self.key})
        urllib.request.urlopen(req, timeout=60).read()
        self.proc.wait(timeout=60)


def build(n, state):
    """Builds a store of n torrents in state with the store benchmark."""
    cmd = ["cargo", "bench", "-p", "shoal-benches", "--bench", "store", "--", str(n), "--keep", state]
    print("building the store:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def words(state, rng, n):
    """n words of stored names, drawn from a sample of the names (so weighted by use)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "sqlite", "metadata.db"), uri=True)
    titles = [t for (t,) in db.execute("SELECT title FROM torrent WHERE rowid % 1000 = 0")]
    db.close()
    pool = [w for t in titles for w in re.findall(r"[^\W\d_]{3,}", t)]
    return [rng.choice(pool) for _ in range(n)]


def timed(d, paths):
    times = []
    for p in paths:
        t = time.perf_counter()
        d.get(p)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrents", type=int, default=1_000_000)
    ap.add_argument("--state", help="a state directory with a store built before (--keep DIR)")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--shoal", default=os.path.join(ROOT, "target/release/shoal"))
    a = ap.parse_args()
    tmp = None
    state = a.state
    try:
        if state is None:
            tmp = tempfile.mkdtemp(prefix="shoal-store-rss-")
            state = os.path.join(tmp, "state")
            build(a.torrents, state)
        rng = random.Random(15)
        ws = words(state, rng, a.requests)
        d = Daemon(a.shoal, state)
        start = status_kib(d.proc.pid)
        q = lambda w, extra="": "txt_filter=" + urllib.parse.quote('"%s"' % w) + extra
        search = timed(d, ["/metadata/search/local?first=1&last=50&hide_xxx=1&include_total=1&" + q(w) for w in ws])
        release = timed(d, ["/search?first=1&last=50&" + q(w) for w in ws])
        compl = timed(d, ["/metadata/search/completions?q=" + urllib.parse.quote(w[:3].lower()) for w in ws])
        popular = timed(d, ["/metadata/torrents/popular?first=1&last=50"] * 100)
        end = status_kib(d.proc.pid)
        num = __import__("json").loads(d.get("/statistics/tribler"))["tribler_statistics"]["num_torrents"]
        d.stop()
        mib = lambda k: k / 1024
        print("| torrents | RSS after start (MiB) | RSS after the requests (MiB) | peak RSS, VmHWM (MiB) | of which file-backed (MiB) |")
        print("|---|---|---|---|---|")
        print("| %d | %.1f | %.1f | %.1f | %.1f |" % (num, mib(start["VmRSS"]), mib(end["VmRSS"]), mib(end["VmHWM"]), mib(end["RssFile"])))
        print()
        print("| over HTTP, %d requests each | p50 (ms) | p99 (ms) |" % a.requests)
        print("|---|---|---|")
        for name, (p50, p99) in [("search, one word, hide_xxx + include_total (P)", search), ("search, one word (R /search)", release),
                                 ("completions (3 letters)", compl), ("popular, first page (100 requests)", popular)]:
            print("| %s | %.2f | %.2f |" % (name, p50, p99))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
