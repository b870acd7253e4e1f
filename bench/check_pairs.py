#!/usr/bin/env python3
"""Compare `onnxdoctor check` builds on one model in paired, interleaved rounds.

Each round runs every build once, in a shuffled order (seeded), each run a fresh process with stdout
to /dev/null and nothing else running in this harness (no sampler thread: check_speed.py's RSS
sampler takes a share of a 2-core machine, which the check's two processes feel). Per build it
prints the median, mean and minimum of CPU (user+sys of the check and its shape-inference helper,
RUSAGE of the waited-for child) and of wall time, and, against the first build, the median and mean
of the per-round differences and in how many rounds the build was cheaper: on a VM whose speed
drifts by ±25 % between minutes, the paired differences are steadier than the medians.

    python bench/check_pairs.py MODEL --build old=/path/to/old/site --build new=/path/to/new/site --rounds 25

A build is LABEL=DIR: DIR is put first on PYTHONPATH (e.g. `pip install --no-deps --target DIR .`
of a checkout). `--python` picks the interpreter (default: this one). Extra arguments after `--`
are passed to `check` (default: `--format json`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--build", action="append", required=True, metavar="LABEL=DIR",
                    help="a build: its label and the folder put first on PYTHONPATH (the first is the reference)")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seed", type=int, default=0, help="seed of the order shuffled in each round")
    ap.add_argument("check_args", nargs="*", default=["--format", "json"])
    args = ap.parse_args()
    builds = []
    for spec in args.build:
        label, sep, folder = spec.partition("=")
        if not sep or not os.path.isdir(folder):
            ap.error(f"--build {spec!r}: expected LABEL=DIR with an existing DIR")
        builds.append((label, folder))
    rng = random.Random(args.seed)
    runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _ in builds}
    for _ in range(args.rounds):
        order = builds[:]
        rng.shuffle(order)
        for label, folder in order:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p))
            t0 = time.perf_counter()
            p = subprocess.Popen([args.python, "-m", "onnxdoctor", "check", *args.check_args, args.model],
                                 stdout=subprocess.DEVNULL, env=env)
            _, status, ru = os.wait4(p.pid, 0)
            if os.waitstatus_to_exitcode(status) not in (0, 1):
                sys.exit(f"{label}: check exited {os.waitstatus_to_exitcode(status)}")
            runs[label].append((ru.ru_utime + ru.ru_stime, time.perf_counter() - t0, ru.ru_maxrss / 1024))
    ref = builds[0][0]
    print(f"{args.rounds} rounds, load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(f"| build | CPU median (s) | CPU mean | CPU min | wall median (s) | CPU vs {ref}, per round: median / mean | "
          f"cheaper in | wall vs {ref}, per round: median | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, _ in builds:
        cpu = [r[0] for r in runs[label]]
        wall = [r[1] for r in runs[label]]
        d_cpu = [a[0] - b[0] for a, b in zip(runs[label], runs[ref])]
        d_wall = [a[1] - b[1] for a, b in zip(runs[label], runs[ref])]
        print(f"| {label} | {statistics.median(cpu):.3f} | {statistics.mean(cpu):.3f} | {min(cpu):.3f} | "
              f"{statistics.median(wall):.3f} | {statistics.median(d_cpu):+.3f} / {statistics.mean(d_cpu):+.3f} | "
              f"{sum(d < 0 for d in d_cpu)}/{len(d_cpu)} | {statistics.median(d_wall):+.3f} | "
              f"{max(r[2] for r in runs[label]):.0f} |")


if __name__ == "__main__":
    main()
