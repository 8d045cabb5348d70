#!/usr/bin/python3
"""How much faster than real time the simulator runs a 50-peer swarm of a 64 MiB torrent.

Runs `shoal-sim --peers 50 --pieces 256 --piece-size 262144 --hash oracle` (1 seeder, 49
leechers, no faults) for each seed under each uplink profile, interleaved, and prints
simulated time / wall time per run and the median per profile.

    cargo build --release -p shoal-tests --bin shoal-sim
    benches/sim/speed.py [--seeds 1..6] [--profile 200000:2000000 --profile 20000:200000]

A profile is `--bandwidth LO:HI`: each host's uplink in bytes/s is drawn from it, and its
downlink is 2-8 times that. The simulator moves every payload byte through real engines, so
its wall time follows the bytes moved (49 x 64 MiB here), and the speed-up is inversely
proportional to the links' speed.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINE = re.compile(r"completed=(\d+)/(\d+) sim_time=([\d.]+)s wall=([\d.]+)s")


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "shoal-sim")


def run(binary, seed, profile):
    cmd = [binary, "--seed", str(seed), "--peers", "50", "--pieces", "256", "--piece-size", "262144"]
    cmd += ["--hash", "oracle", "--bandwidth", profile]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = LINE.search(out.strip().splitlines()[-1])
    if not m or m.group(1) != m.group(2):
        sys.exit(f"unexpected result of {' '.join(cmd)}:\n{out}")
    return float(m.group(3)), float(m.group(4))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1..6", help="half-open range A..B (default 1..6)")
    p.add_argument("--profile", action="append", help="uplink range LO:HI in bytes/s (repeatable)")
    p.add_argument("--sim", default=default_binary(), help="the shoal-sim binary")
    a = p.parse_args()
    lo, hi = (int(x) for x in a.seeds.split(".."))
    profiles = a.profile or ["200000:2000000", "50000:500000", "20000:200000"]
    if not os.path.exists(a.sim):
        sys.exit(f"{a.sim} not found: cargo build --release -p shoal-tests --bin shoal-sim")
    ratios = {pr: [] for pr in profiles}
    print(f"{'uplinks B/s':>16} {'seed':>4} {'simulated':>10} {'wall':>7} {'speed':>7}")
    for seed in range(lo, hi):
        for pr in profiles:
            sim, wall = run(a.sim, seed, pr)
            ratios[pr].append(sim / wall)
            print(f"{pr:>16} {seed:>4} {sim:>9.1f}s {wall:>6.2f}s {sim / wall:>6.0f}x", flush=True)
    print()
    for pr in profiles:
        r = ratios[pr]
        print(f"{pr:>16}: median {statistics.median(r):.0f}x, min {min(r):.0f}x, max {max(r):.0f}x over {len(r)} seeds")


if __name__ == "__main__":
    main()
