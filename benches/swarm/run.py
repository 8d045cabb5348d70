#!/usr/bin/python3
"""Swarm benchmark: Shoal against libtorrent, on loopback, in one interleaved run.

A python-libtorrent seeder (tests/scripts/lt_seed.py, high-performance seed settings) serves each
payload on 127.0.0.1; Shoal (`shoal download --peer`) and a libtorrent leecher
(tests/scripts/lt_leech.py --peer) download it in turn (A B A B ...) into a fresh directory. No
tracker: every leecher is given the seeder's address directly. Each download is timed (process
start to exit), its CPU time and peak RSS are taken from wait4(), and the files are checked
against the payload's SHA-1s after the clock has stopped.

Stdlib only (plus the system's python3-libtorrent, used by the helper scripts). Builds nothing:
run `cargo build --release -p shoal-api` first. See README.md next to this file.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOAL = REPO / "target" / "release" / "shoal"
SCRIPTS = REPO / "tests" / "scripts"
PYTHON = "/usr/bin/python3"  # the one Debian's python3-libtorrent is built for
PIECE_SIZE = 256 * 1024
MiB = 1 << 20
CHUNK = 1 * MiB
# Bump when the payload generator changes, so cached payloads are rebuilt.
PAYLOAD_VERSION = 1

PAYLOADS = {
    "single": {"name": "single-1GiB.bin", "size": 1 << 30, "files": 1, "label": "1 GiB, 1 file"},
    "multi": {"name": "multi-256MiB", "size": 256 * MiB, "files": 200, "label": "256 MiB, 200 files"},
}

SHOAL_CLIENT = "shoal"
LT_CLIENT = "libtorrent"
# Seeder kinds of Shoal, and the `--encryption` their seeder and leechers run with.
SHOAL_ENCRYPTION = {"shoal": None, "shoal-rc4": "forced", "shoal-plain": "disabled"}
# `--utp`: Shoal downloads from a Shoal seeder over uTP (its default) and over TCP (--no-utp).
SHOAL_UTP = "shoal-utp"
SHOAL_TCP = "shoal-tcp"
# `--utp` also: a libtorrent seeder that speaks uTP only, and a libtorrent leecher likewise.
LT_UTP = "libtorrent-utp"
LT_UTP_SEED = "lt-utp"
LT_UTP_ONLY = json.dumps({"enable_outgoing_utp": True, "enable_incoming_utp": True,
                          "enable_outgoing_tcp": False, "enable_incoming_tcp": False})


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    log("run.py: " + msg)
    sys.exit(2)



# Every Shoal started here stays on loopback: no DHT routers, no LSD multicast (the test suite's
# switch, inherited by the child processes).
os.environ["SHOAL_LOCAL_ONLY"] = "1"

# ---------------------------------------------------------------------------------------------
# Child processes: every one in a process group of its own, all killed on exit.

CHILDREN = set()
CHILDREN_LOCK = threading.Lock()
CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Child:
    """A child process reaped by a thread with wait4(), so its rusage is exact."""

    def __init__(self, argv, log_path, stdout_path=None, env=None):
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self._out = open(stdout_path, "wb") if stdout_path else self._log
        self.t1 = None
        self.exitcode = None
        self.rusage = None
        # Not the reaper's is_alive(): a Ctrl-C inside Thread.join() can leave it wrong.
        self._done = threading.Event()
        # No Ctrl-C between the fork and the registration, or the child could be left behind.
        # (Not pthread_sigmask: the child would inherit the blocked mask.)
        _deferred[0] += 1
        try:
            self.t0 = time.monotonic()
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._log, start_new_session=True,
                                      env=None if env is None else {**os.environ, **env})
            self.pid = self.p.pid
            with CHILDREN_LOCK:
                CHILDREN.add(self)
            self._reaper = threading.Thread(target=self._reap, daemon=True)
            self._reaper.start()
        finally:
            _deferred[0] -= 1
            if _deferred[0] == 0 and _deferred[1] is not None:
                raise KeyboardInterrupt("signal %d" % _deferred[1])

    def _reap(self):
        _, status, ru = os.wait4(self.pid, 0)
        self.t1 = time.monotonic()
        self.rusage = ru
        self.exitcode = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.exitcode  # so Popen never waits for it again
        with CHILDREN_LOCK:
            CHILDREN.discard(self)
        for f in {self._log, self._out}:
            f.close()
        self._done.set()

    def alive(self):
        return not self._done.is_set()

    def wait(self, timeout):
        """True once the child has exited; False if it is still running after timeout s."""
        deadline = time.monotonic() + timeout
        while not self._done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._done.wait(min(left, 0.2))
        return True

    def signal(self, sig):
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after grace seconds."""
        self.signal(signal.SIGTERM)
        if not self.wait(grace):
            self.signal(signal.SIGKILL)
            self.wait(5.0)

    @property
    def wall(self):
        return self.t1 - self.t0

    @property
    def cpu(self):
        return self.rusage.ru_utime + self.rusage.ru_stime

    @property
    def maxrss_mib(self):
        return self.rusage.ru_maxrss / 1024.0  # KiB on Linux

    def cpu_now(self):
        """CPU seconds used so far by a running child (all its threads), from /proc."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                fields = f.read().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            return float("nan")

    def log_tail(self, n=15):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + l for l in lines[-n:])


def kill_all_children():
    with CHILDREN_LOCK:
        children = list(CHILDREN)
    for c in children:
        c.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    for c in children:
        if not c.wait(max(0.0, deadline - time.monotonic())):
            c.signal(signal.SIGKILL)
            c.wait(2.0)


_deferred = [0, None]  # [depth of sections a signal must not interrupt, signal received]


def on_signal(signum, _frame):
    if _deferred[0]:
        _deferred[1] = signum
        return
    raise KeyboardInterrupt("signal %d" % signum)


# ---------------------------------------------------------------------------------------------
# Helpers: ports, waiting, payloads, verification.

_used_ports = set()


def free_port():
    """A TCP port free on 127.0.0.1 that this run has not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    die("cannot find a free port")


def is_listening(port):
    """Whether something listens on 127.0.0.1:port (read from /proc, no connection made)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def wait_until(pred, timeout, child=None, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if child is not None and not child.alive():
            raise RuntimeError("%s exited (code %s) while waiting for %s\n%s"
                               % (Path(child.argv[1]).name if child.argv[0] == PYTHON else "shoal",
                                  child.exitcode, what, child.log_tail()))
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def payload_layout(key):
    """[(relative path, size)] for a payload, deterministic."""
    spec = PAYLOADS[key]
    if spec["files"] == 1:
        return [(spec["name"], spec["size"])]
    n, total = spec["files"], spec["size"]
    # Uneven sizes (so files straddle piece boundaries), from a hash so they never change.
    weights = [1 + int.from_bytes(hashlib.sha256(b"shoal-bench-size:%d" % i).digest()[:4], "big")
               % 1000 for i in range(n)]
    sizes = [total * w // sum(weights) for w in weights]
    sizes[-1] += total - sum(sizes)
    return [("%s/d%02d/f%03d.bin" % (spec["name"], i % 8, i), s) for i, s in enumerate(sizes)]


def write_payload(data_dir, key):
    """Writes the payload's files; returns {relative path: sha1 hex}."""
    sums = {}
    for rel, size in payload_layout(key):
        path = data_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha1()
        with open(path, "wb") as f:
            off = 0
            while off < size:
                n = min(CHUNK, size - off)
                block = hashlib.shake_128(b"shoal-bench:%s:%d" % (rel.encode(), off)).digest(n)
                f.write(block)
                h.update(block)
                off += n
        sums[rel] = h.hexdigest()
    return sums


def prepare_payload(cache, key):
    """Makes (or reuses) the payload and its torrent; returns (torrent path, sha1 map)."""
    spec = PAYLOADS[key]
    data_dir = cache / "data"
    stamp = cache / ("%s.json" % key)
    torrent = cache / "torrents" / ("%s.torrent" % key)
    want = {"version": PAYLOAD_VERSION, "name": spec["name"], "size": spec["size"],
            "files": spec["files"], "piece_size": PIECE_SIZE}
    meta = None
    if stamp.exists() and torrent.exists():
        try:
            meta = json.loads(stamp.read_text())
        except ValueError:
            meta = None
        if meta is not None and (meta.get("spec") != want or not all(
                (data_dir / rel).is_file() and (data_dir / rel).stat().st_size == size
                for rel, size in payload_layout(key))):
            meta = None
    if meta is None:
        log("making payload %s (%s) in %s ..." % (key, spec["label"], data_dir))
        stamp.unlink(missing_ok=True)
        old = data_dir / spec["name"]
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        sums = write_payload(data_dir, key)
        torrent.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([str(SHOAL), "create", str(data_dir / spec["name"]), "-o", str(torrent),
                            "--piece-size", str(PIECE_SIZE)], capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            die("shoal create failed:\n" + r.stdout + r.stderr)
        meta = {"spec": want, "sha1": sums, "infohash": r.stdout.split()[0] if r.stdout else ""}
        stamp.write_text(json.dumps(meta, indent=1))
        log("  done in %.1fs" % (time.monotonic() - t))
    return torrent, meta["sha1"]


def verify(download_dir, sums):
    """None if every file matches its SHA-1, else a description of the first difference."""
    for rel, want in sums.items():
        path = download_dir / rel
        if not path.is_file():
            return "missing " + rel
        h = hashlib.sha1()
        with open(path, "rb") as f:
            while True:
                b = f.read(4 * MiB)
                if not b:
                    break
                h.update(b)
        if h.hexdigest() != want:
            return "content differs: " + rel
    return None


def first_connection(seed_log, since):
    """Monotonic time of the first connection a libtorrent seeder accepted after `since` (its
    log lines start with time.monotonic(), the same clock as ours), or None."""
    try:
        lines = Path(seed_log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        ts, _, rest = line.partition(" ")
        if rest.startswith("incoming_connection_alert"):
            try:
                t = float(ts)
            except ValueError:
                continue
            if t >= since:
                return t
    return None


def warm_cache(data_dir, sums):
    for rel in sums:
        with open(data_dir / rel, "rb") as f:
            while f.read(8 * MiB):
                pass


# ---------------------------------------------------------------------------------------------
# Seeders and leechers.

class Bench:
    def __init__(self, args):
        self.args = args
        self.cache = Path(args.cache_dir).resolve()
        self.runs = self.cache / "runs"
        self.logs = self.cache / "logs"
        self.data = self.cache / "data"
        self.payloads = {}  # key -> (torrent, sums)
        self.lt_seeders = {}  # (key, kind) -> (Child, port)
        self.shoal_seeders = {}
        self.results = []  # dicts, one per timed run
        self.failures = 0

    def payload(self, key):
        if key not in self.payloads:
            self.payloads[key] = prepare_payload(self.cache, key)
        return self.payloads[key]

    def lt_seeder(self, key, kind="lt"):
        """The libtorrent seeder of `key`: over TCP ("lt") or uTP only (LT_UTP_SEED)."""
        if (key, kind) not in self.lt_seeders:
            torrent, sums = self.payload(key)
            warm_cache(self.data, sums)
            port = free_port()
            out = self.logs / ("seed-%s-%s.out" % (kind, key))
            c = Child([PYTHON, SCRIPTS / "lt_seed.py", "--torrent", torrent, "--save-path",
                       self.data, "--port", port, "--no-wait-tracker",
                       "--ready-timeout", max(self.args.timeout, 120)],
                      self.logs / ("seed-%s-%s.log" % (kind, key)), stdout_path=out,
                      env={"LT_SETTINGS": LT_UTP_ONLY} if kind == LT_UTP_SEED else None)
            wait_until(lambda: "ready" in out.read_text(errors="replace"),
                       max(self.args.timeout, 120) + 10,
                       c, "the libtorrent seeder of %s" % key)
            log("libtorrent seeder (%s) for %s on 127.0.0.1:%d (pid %d)" % (kind, key, port, c.pid))
            self.lt_seeders[(key, kind)] = (c, port)
        return self.lt_seeders[(key, kind)]

    def seeder(self, kind, key):
        """The seeder of `key` of this kind ("lt", LT_UTP_SEED or one of SHOAL_ENCRYPTION), started
        once."""
        if kind in ("lt", LT_UTP_SEED):
            return self.lt_seeder(key, kind)
        return self.shoal_seeder(key, kind)

    def shoal_seeder(self, key, kind="shoal"):
        if (key, kind) not in self.shoal_seeders:
            torrent, sums = self.payload(key)
            warm_cache(self.data, sums)
            port = free_port()
            logp = self.logs / ("seed-%s-%s.log" % (kind, key))
            c = Child([SHOAL, "seed", torrent, self.data, "--bind", "127.0.0.1",
                       "--listen-port", port] + encryption_args(kind), logp)

            def ready():
                text = logp.read_text(errors="replace")
                for line in text.splitlines():
                    if line.startswith("checked existing data:"):
                        words = line.split()
                        if len(words) >= 6 and words[3] == words[5] and is_listening(port):
                            return True
                        raise RuntimeError("shoal seed: " + line)
                return False

            wait_until(ready, max(self.args.timeout, 120), c, "the Shoal seeder of %s" % key)
            log("Shoal seeder (%s) for %s on 127.0.0.1:%d (pid %d)" % (kind, key, port, c.pid))
            self.shoal_seeders[(key, kind)] = (c, port)
        return self.shoal_seeders[(key, kind)]

    def leecher_argv(self, client, torrent, out_dir, port, peers, seed_kind):
        if client in (SHOAL_CLIENT, SHOAL_UTP, SHOAL_TCP):
            argv = [SHOAL, "download", torrent, "-o", out_dir, "--bind", "127.0.0.1",
                    "--listen-port", port] + encryption_args(seed_kind)
            # Every scenario but `--utp`'s uTP row runs over TCP, as before uTP: the libtorrent
            # helpers run with uTP off (ltcommon.py), and RC4 against plaintext or Shoal seeding
            # Shoal compare TCP figures. Shoal skips the uTP dial it would otherwise try first.
            if client != SHOAL_UTP:
                argv.append("--no-utp")
            for p in peers:
                argv += ["--peer", "127.0.0.1:%d" % p]
        else:
            argv = [PYTHON, SCRIPTS / "lt_leech.py", "--torrent", torrent, "--save-path", out_dir,
                    "--port", port, "--timeout", self.args.timeout]
            for p in peers:
                argv += ["--peer", "127.0.0.1:%d" % p]
        return argv

    def fresh_dir(self, name):
        d = self.runs / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def prewarm(self, size):
        """Writes and deletes a scratch file of `size` bytes right before a timed download.

        In a VM with free page reporting (virtio-balloon), memory the guest has freed for a few
        seconds goes back to the host, and the first write into it costs a host page fault:
        on the development machine a plain 1 GiB pwrite takes 2.0 CPU s after an idle pause
        and 0.24 s right after another one. Page-cache writes in large chunks (Shoal's) land in
        that memory; writes through mmap (libtorrent's) mostly do not. The scratch file makes
        the host back the memory the download is about to write into, the same for every
        client, so the figures measure the clients and not the hypervisor.
        """
        if not self.args.prewarm:
            return
        path = self.runs / "prewarm.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        chunk = b"\0" * MiB
        with open(path, "wb") as f:
            for _ in range(size // MiB):
                f.write(chunk)
        path.unlink()

    def clear_runs(self):
        shutil.rmtree(self.runs, ignore_errors=True)
        os.sync()  # no writeback of the last download during the next one

    def timed(self, scenario, key, label, client, seeder, n_leechers, rnd, seed_kind):
        """One timed download (n_leechers at once); appends a result dict."""
        torrent, sums = self.payload(key)
        seed_child, seed_port = seeder
        tag = "%s-%s-r%d" % (scenario, label.replace(" ", "").replace(">", ""), rnd)
        dirs = [self.fresh_dir("%s-%d" % (tag, i)) for i in range(n_leechers)]
        ports = [free_port() for _ in dirs]
        self.prewarm(PAYLOADS[key]["size"] * n_leechers + 256 * MiB)
        seed_cpu0 = seed_child.cpu_now()
        leechers = []
        error = None
        t0 = time.monotonic()
        try:
            for i, (d, port) in enumerate(zip(dirs, ports)):
                # Leecher i dials the seeder and every leecher started before it.
                argv = self.leecher_argv(client, torrent, d, port, [seed_port] + ports[:i], seed_kind)
                env = {"LT_SETTINGS": LT_UTP_ONLY} if client == LT_UTP else None
                c = Child(argv, self.logs / ("%s-%d.log" % (tag, i)), env=env)
                leechers.append(c)
                if i + 1 < n_leechers:
                    wait_until(lambda: is_listening(port), 30, c, "leecher %d to listen" % i)
            for c in leechers:
                if not c.wait(max(0.0, t0 + self.args.timeout - time.monotonic())):
                    error = "timeout after %ss" % self.args.timeout
                    break
        except RuntimeError as e:
            error = str(e)
        if error:
            for c in leechers:
                c.stop(2.0)
        seed_cpu = seed_child.cpu_now() - seed_cpu0
        for i, c in enumerate(leechers):
            if error is None and c.exitcode != 0:
                error = "leecher %d exited with %s\n%s" % (i, c.exitcode, c.log_tail())
        if error is None:
            for i, d in enumerate(dirs):
                bad = verify(d, sums)
                if bad:
                    error = "leecher %d: verification failed: %s" % (i, bad)
                    break
        wall = max(c.t1 for c in leechers) - t0 if error is None else None
        xfer = None
        if error is None and seed_kind in ("lt", LT_UTP_SEED):
            t_conn = first_connection(seed_child.log_path, t0)
            if t_conn is not None:
                xfer = max(c.t1 for c in leechers) - t_conn
        res = {"scenario": scenario, "payload": key, "client": label, "round": rnd,
               "leechers": n_leechers, "ok": error is None, "error": error}
        if error is None:
            size = PAYLOADS[key]["size"] * n_leechers
            res.update({"wall": wall, "mbps": size / wall / 1e6,
                        "cpu": sum(c.cpu for c in leechers),
                        "rss": max(c.maxrss_mib for c in leechers),
                        "seed_cpu": seed_cpu, "xfer": xfer})
            log("  r%d %-16s %-12s %6.2f s %6.1f MB/s  cpu %5.2f s  rss %6.1f MiB  seeder cpu %5.2f s"
                "  connect->exit %s s"
                % (rnd, scenario, label, wall, res["mbps"], res["cpu"], res["rss"], seed_cpu,
                   fmt(xfer, ".2f")))
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        else:
            self.failures += 1
            log("  r%d %-16s %-12s FAILED: %s (logs in %s)" % (rnd, scenario, label, error, self.logs))
        self.results.append(res)
        self.clear_runs()


# ---------------------------------------------------------------------------------------------
# Scenarios and the table.

def encryption_args(kind):
    """The `--encryption` option of a Shoal seeder kind (none: the binary's default)."""
    enc = SHOAL_ENCRYPTION.get(kind)
    if enc == "forced":
        # RC4 only: with both allowed, two Shoals pick a plaintext stream after the handshake.
        return ["--encryption", enc, "--encryption-level", "rc4"]
    return ["--encryption", enc] if enc else []


def scenarios(args):
    """[(id, title, payload key, [(client label, client, seeder kind)], leechers)]"""
    keys = ["single", "multi"] if args.payload == "both" else [args.payload]
    out = []
    for k in keys:
        out.append(("lt-seed-" + k, "%s, libtorrent seeds" % PAYLOADS[k]["label"], k,
                    [(SHOAL_CLIENT, SHOAL_CLIENT, "lt"), (LT_CLIENT, LT_CLIENT, "lt")], 1))
    if args.all:
        k = "single" if "single" in keys else keys[0]
        out.append(("self-seed-" + k, "%s, each client seeds itself" % PAYLOADS[k]["label"], k,
                    [("shoal->shoal", SHOAL_CLIENT, "shoal"), ("lt->lt", LT_CLIENT, "lt")], 1))
        k = "multi" if "multi" in keys else keys[0]
        out.append(("swarm4-" + k, "%s, 1 libtorrent seeder + 4 leechers (total)"
                    % PAYLOADS[k]["label"], k,
                    [("4x shoal", SHOAL_CLIENT, "lt"), ("4x lt", LT_CLIENT, "lt")], 4))
    if args.encryption:
        k = "single" if "single" in keys else keys[0]
        out.append(("encryption-" + k, "%s, Shoal seeds Shoal, RC4 vs plaintext"
                    % PAYLOADS[k]["label"], k,
                    [("shoal->shoal rc4", SHOAL_CLIENT, "shoal-rc4"),
                     ("shoal->shoal plain", SHOAL_CLIENT, "shoal-plain")], 1))
    if args.utp:
        k = "single" if "single" in keys else keys[0]
        out.append(("utp-" + k, "%s, Shoal seeds, uTP vs TCP" % PAYLOADS[k]["label"], k,
                    [("shoal uTP", SHOAL_UTP, "shoal"), ("shoal TCP", SHOAL_TCP, "shoal")], 1))
        out.append(("utp-lt-seed-" + k, "%s, libtorrent seeds over uTP only" % PAYLOADS[k]["label"],
                    k, [("shoal uTP", SHOAL_UTP, LT_UTP_SEED),
                        ("libtorrent uTP", LT_UTP, LT_UTP_SEED)], 1))
    return out


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(bench, scens):
    rows = []
    head = ["scenario", "client", "runs", "median wall s", "MB/s", "CPU s", "peak RSS MiB",
            "seeder CPU s", "connect->exit s", "MB/s ratio", "CPU ratio"]
    for sid, title, key, clients, n in scens:
        # The first client against the second: Shoal against libtorrent, or RC4 against
        # plaintext.
        med = []
        for label, client, _kind in clients:
            rs = [r for r in bench.results if r["scenario"] == sid and r["client"] == label]
            ok = [r for r in rs if r["ok"]]
            if ok:
                wall = statistics.median(r["wall"] for r in ok)
                m = {"wall": wall, "mbps": PAYLOADS[key]["size"] * n / wall / 1e6,
                     "cpu": statistics.median(r["cpu"] for r in ok),
                     "rss": statistics.median(r["rss"] for r in ok),
                     "seed_cpu": statistics.median(r["seed_cpu"] for r in ok)}
                xf = [r["xfer"] for r in ok if r["xfer"] is not None]
                m["xfer"] = statistics.median(xf) if xf else None
            else:
                m = dict.fromkeys(["wall", "mbps", "cpu", "rss", "seed_cpu", "xfer"])
            med.append(m)
            m["runs"] = "%d/%d" % (len(ok), len(rs))
            m["label"] = label
        s, l = med[0], med[1]
        for i, m in enumerate(med):
            ratio_mbps = ratio_cpu = None
            if i == 0 and s["wall"] is not None and l["wall"] is not None:
                ratio_mbps, ratio_cpu = s["mbps"] / l["mbps"], s["cpu"] / l["cpu"]
            rows.append([title if i == 0 else "", m["label"], m["runs"],
                         fmt(m["wall"], ".2f"), fmt(m["mbps"], ".0f"), fmt(m["cpu"], ".2f"),
                         fmt(m["rss"], ".0f"), fmt(m["seed_cpu"], ".2f"), fmt(m["xfer"], ".2f"),
                         fmt(ratio_mbps, ".2f"), fmt(ratio_cpu, ".2f")])
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def preflight():
    if not SHOAL.is_file() or not os.access(SHOAL, os.X_OK):
        die("%s not found: build it first with\n    cargo build --release -p shoal-api" % SHOAL)
    for s in ("lt_seed.py", "lt_leech.py", "ltcommon.py"):
        if not (SCRIPTS / s).is_file():
            die("missing helper script %s" % (SCRIPTS / s))
    r = subprocess.run([PYTHON, "-c", "import libtorrent; print(libtorrent.__version__)"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("%s cannot import libtorrent (apt install python3-libtorrent)\n%s" % (PYTHON, r.stderr))
    return r.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="timed runs per client and scenario (3)")
    p.add_argument("--payload", choices=["single", "multi", "both"], default="both",
                   help="single = 1 GiB in one file, multi = 256 MiB in 200 files (both)")
    p.add_argument("--all", action="store_true",
                   help="also: each client seeding itself, and 1 seeder + 4 leechers")
    p.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_DIR", "/tmp/shoal-bench"),
                   help="payloads, torrents, downloads and logs (/tmp/shoal-bench)")
    p.add_argument("--timeout", type=int, default=300,
                   help="seconds one timed download (or swarm) may take before it is killed (300)")
    p.add_argument("--encryption", action="store_true",
                   help="also: Shoal seeding Shoal with RC4 (--encryption forced) against "
                        "plaintext (--encryption disabled)")
    p.add_argument("--json", help="also write every run's figures to this file")
    p.add_argument("--utp", action="store_true",
                   help="also: Shoal seeds and Shoal downloads over uTP, then over TCP (--no-utp); "
                        "and a uTP-only libtorrent seeder, leeched by Shoal and by a uTP-only "
                        "libtorrent")
    p.add_argument("--no-prewarm", dest="prewarm", action="store_false",
                   help="do not write and delete a scratch file before each download (see prewarm())")
    args = p.parse_args()
    if args.rounds < 1:
        die("--rounds must be at least 1")

    lt_version = preflight()
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)

    bench = Bench(args)
    for d in (bench.cache, bench.logs):
        d.mkdir(parents=True, exist_ok=True)
    bench.clear_runs()
    scens = scenarios(args)
    shoal_version = subprocess.run([str(SHOAL), "--version"], capture_output=True,
                                   text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(SHOAL.stat().st_mtime))
    log("%s (built %s), libtorrent %s, %d CPUs, load %s" % (
        shoal_version, built, lt_version, os.cpu_count(),
        " ".join("%.2f" % x for x in os.getloadavg())))
    interrupted = False
    try:
        # Set everything up before the first timed run.
        for _sid, _t, key, clients, _n in scens:
            for _l, _c, kind in clients:
                bench.seeder(kind, key)
        for rnd in range(1, args.rounds + 1):
            for sid, _title, key, clients, n in scens:
                for label, client, kind in clients:
                    seeder = bench.seeder(kind, key)
                    if not seeder[0].alive():
                        raise RuntimeError("the %s seeder of %s died:\n%s"
                                           % (kind, key, seeder[0].log_tail()))
                    bench.timed(sid, key, label, client, seeder, n, rnd, kind)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every child")
    except RuntimeError as e:
        bench.failures += 1
        log("run.py: " + str(e))
    finally:
        kill_all_children()
        shutil.rmtree(bench.runs, ignore_errors=True)

    if bench.results:
        print()
        print("Shoal vs libtorrent on 127.0.0.1, %d round(s), interleaved; %s; load at end %s"
              % (args.rounds, shoal_version, " ".join("%.2f" % x for x in os.getloadavg())))
        print(table(bench, scens))
        print("ratios are the first row over the second: Shoal / libtorrent, RC4 / plaintext or uTP / TCP "
              "(MB/s: higher is better for the first; CPU: lower is better)")
    if args.json:
        Path(args.json).write_text(json.dumps({"shoal": shoal_version, "libtorrent": lt_version,
                                               "rounds": args.rounds, "results": bench.results},
                                              indent=1))
    if interrupted:
        return 130
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
