#!/usr/bin/python3
"""WAN-like benchmark: Shoal against libtorrent over a slow, lossy path between namespaces.

`--transport utp` runs the same race over uTP (BEP 29): the seeder and libtorrent's leecher
speak only uTP, and Shoal dials uTP first as it does by default.

Three network namespaces of this run's own: a seeder (10.77.1.2), a router and a leecher
(10.77.2.2), joined by veth pairs. The router forwards between them through:

* `wan-link` (benches/wan/link, built with `cargo build --release -p shoal-wan-link`), which
  takes every forwarded packet from an iptables NFQUEUE, drops `--loss` of them and releases
  the rest `--delay-ms` later (this kernel has no `tc netem`), so the round trip is twice that;
* a `tbf` qdisc at `--rate` on each of the router's links.

A python-libtorrent seeder (tests/scripts/lt_seed.py) serves a payload in the seeder namespace;
Shoal (`shoal download --peer`) and a libtorrent leecher (tests/scripts/lt_leech.py) download
it in turn (A B A B ...) in the leecher namespace, each into a fresh directory, and are timed
from process start to exit, then checked against the payload's SHA-1s. Nothing leaves the
namespaces: they have no route to anything else, and Shoal runs with SHOAL_LOCAL_ONLY=netns.

Needs root, iptables, python3-libtorrent and the release binaries (`shoal`, `wan-link`).
Helpers (child processes, payloads, verification) come from benches/swarm/run.py.
"""
import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
_spec = importlib.util.spec_from_file_location("swarm_run", REPO / "benches" / "swarm" / "run.py")
swarm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(swarm)


WAN_LINK = REPO / "target" / "release" / "wan-link"
SEED_IP, LEECH_IP = "10.77.1.2", "10.77.2.2"
SEED_PORT, LEECH_PORT = 6881, 6882


def sh(*argv):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(map(str, argv)), (r.stderr or r.stdout).strip()))
    return r.stdout


class Path3:
    """The three namespaces and the router's link program; torn down by close()."""

    def __init__(self, tag, args):
        self.ns = {k: "shoal-wan-%s-%s" % (k, tag) for k in ("seed", "router", "leech")}
        self.link = None
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        s, r, l = self.ns["seed"], self.ns["router"], self.ns["leech"]
        sh("ip", "link", "add", "s0", "netns", s, "type", "veth", "peer", "name", "rs", "netns", r)
        sh("ip", "link", "add", "l0", "netns", l, "type", "veth", "peer", "name", "rl", "netns", r)
        for ns, dev, addr, gw in ((s, "s0", SEED_IP, "10.77.1.1"), (l, "l0", LEECH_IP, "10.77.2.1")):
            sh("ip", "-n", ns, "addr", "add", addr + "/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", gw)
        for dev, addr in (("rs", "10.77.1.1/24"), ("rl", "10.77.2.1/24")):
            sh("ip", "-n", r, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", r, "link", "set", dev, "up")
            sh("ip", "netns", "exec", r, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate",
               args.rate, "burst", "64kb", "limit", str(args.queue_bytes))
        sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", r, "iptables", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num", "0")
        out = args.logs / "wan-link.out"
        self.link = swarm.Child(["ip", "netns", "exec", r, WAN_LINK, "--delay-ms", args.delay_ms,
                                 "--loss", args.loss, "--seed", args.seed],
                                args.logs / "wan-link.log", stdout_path=out)
        swarm.wait_until(lambda: "ready" in out.read_text(errors="replace"), 10, self.link, "wan-link")

    def exec(self, ns):
        return ["ip", "netns", "exec", self.ns[ns]]

    def close(self):
        if self.link is not None:
            self.link.stop()
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def lt_settings(ip, port, transport):
    import json
    s = {"listen_interfaces": "%s:%d" % (ip, port), "outgoing_interfaces": ""}
    if transport == "utp":
        s.update({"enable_outgoing_tcp": False, "enable_incoming_tcp": False,
                  "enable_outgoing_utp": True, "enable_incoming_utp": True})
    return json.dumps(s)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="timed runs per client (3)")
    p.add_argument("--size-mib", type=int, default=64, help="payload size in MiB (64)")
    p.add_argument("--delay-ms", type=float, default=25.0, help="one-way delay at the router (25: 50 ms RTT)")
    p.add_argument("--loss", type=float, default=0.005, help="share of packets dropped (0.005)")
    p.add_argument("--rate", default="100mbit", help="tbf rate of each router link (100mbit)")
    p.add_argument("--queue-bytes", type=int, default=1_000_000, help="tbf queue limit in bytes")
    p.add_argument("--seed", type=int, default=1, help="seed of the loss pattern")
    p.add_argument("--transport", choices=["tcp", "utp"], default="tcp",
                   help="how leechers reach the seeder: the seeder and libtorrent's leecher speak only "
                        "that; Shoal gets --no-utp for tcp, and dials uTP first (its default) for utp")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one download may take")
    p.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_DIR", "/tmp/shoal-bench"))
    args = p.parse_args()
    if os.geteuid() != 0:
        swarm.die("needs root (network namespaces, iptables)")
    for need in (swarm.SHOAL, WAN_LINK):
        if not need.exists():
            swarm.die("%s is missing: cargo build --release -p shoal-api -p shoal-wan-link" % need)
    if shutil.which("iptables") is None:
        swarm.die("iptables is missing (apt-get install iptables)")
    cache = Path(args.cache_dir).resolve()
    args.logs = cache / "logs-wan"
    args.logs.mkdir(parents=True, exist_ok=True)
    key = "wan"
    swarm.PAYLOADS[key] = {"name": "wan-%dMiB" % args.size_mib, "size": args.size_mib * swarm.MiB,
                           "files": 1, "label": "%d MiB, one file" % args.size_mib}
    torrent, sums = swarm.prepare_payload(cache, key)  # `shoal create`, in the host's namespace
    # From here Shoal runs in the leecher namespace: it may reach the other namespaces' private
    # addresses, and nothing else.
    os.environ["SHOAL_LOCAL_ONLY"] = "netns"
    runs = cache / "runs-wan"
    net = Path3(str(os.getpid()), args)
    results = {"shoal": [], "libtorrent": []}
    try:
        out = args.logs / "seed.out"
        env_seed = dict(os.environ, LT_SETTINGS=lt_settings(SEED_IP, SEED_PORT, args.transport))
        seeder = swarm.Child(net.exec("seed") + ["env", "LT_SETTINGS=" + env_seed["LT_SETTINGS"],
                             swarm.PYTHON, swarm.SCRIPTS / "lt_seed.py", "--torrent", torrent,
                             "--save-path", cache / "data", "--port", SEED_PORT, "--no-wait-tracker"],
                             args.logs / "seed.log", stdout_path=out)
        swarm.wait_until(lambda: "ready" in out.read_text(errors="replace"), 300, seeder, "the seeder")
        peer = "%s:%d" % (SEED_IP, SEED_PORT)
        for rnd in range(args.rounds):
            for client in ("shoal", "libtorrent"):
                d = runs / ("%s-%d" % (client, rnd))
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                if client == "shoal":
                    argv = net.exec("leech") + [swarm.SHOAL, "download", torrent, "-o", d, "--bind", LEECH_IP,
                                                "--listen-port", LEECH_PORT, "--peer", peer]
                    if args.transport == "tcp":
                        argv.append("--no-utp")
                else:
                    argv = net.exec("leech") + ["env", "LT_SETTINGS=" + lt_settings(LEECH_IP, LEECH_PORT, args.transport),
                                                swarm.PYTHON, swarm.SCRIPTS / "lt_leech.py", "--torrent", torrent,
                                                "--save-path", d, "--port", LEECH_PORT, "--peer", peer,
                                                "--timeout", args.timeout]
                c = swarm.Child(argv, args.logs / ("%s-%d.log" % (client, rnd)))
                if not c.wait(args.timeout + 30):
                    c.stop()
                    raise RuntimeError("%s round %d timed out\n%s" % (client, rnd, c.log_tail()))
                if c.exitcode != 0:
                    raise RuntimeError("%s round %d exited %s\n%s" % (client, rnd, c.exitcode, c.log_tail()))
                bad = swarm.verify(d, sums)
                if bad:
                    raise RuntimeError("%s round %d: %s" % (client, rnd, bad))
                mbs = args.size_mib * swarm.MiB / c.wall / 1e6
                results[client].append((mbs, c.wall, c.cpu, c.maxrss_mib))
                swarm.log("%-10s round %d: %6.2f MB/s  %5.1f s  CPU %.2f s  RSS %.0f MiB"
                          % (client, rnd, mbs, c.wall, c.cpu, c.maxrss_mib))
                shutil.rmtree(d, ignore_errors=True)
        seeder.stop()
    finally:
        swarm.kill_all_children()
        net.close()
    print("WAN-like path: %.0f ms RTT, %.2f%% loss, %s, %d MiB payload, %s, %d rounds (median)"
          % (2 * args.delay_ms, args.loss * 100, args.rate, args.size_mib, args.transport, args.rounds))
    print("| leecher | MB/s | s | CPU s | RSS MiB |")
    print("|---|---|---|---|---|")
    for client, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows)]
        print("| %s | %.2f | %.1f | %.2f | %.0f |" % (client, *med))
    s, l = (statistics.median(r[0] for r in results[c]) for c in ("shoal", "libtorrent"))
    print("Shoal / libtorrent: %.2fx" % (s / l))


if __name__ == "__main__":
    main()
