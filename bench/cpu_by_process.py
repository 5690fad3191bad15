#!/usr/bin/env python3
"""Run a command and say where the whole machine's CPU went while it ran, by kind of process.

    .venv/bin/python bench/cpu_by_process.py -- .venv/bin/kora migrate bench/out/tpch_plan.yaml --no-recover
    .venv/bin/python bench/cpu_by_process.py --busy -- bash -c 'mariadb ... | psql ...'

On a CPU-bound 2-core machine a migration's wall time is its CPU work over two cores, so the
question "what is slow" is "who spends the CPU": PostgreSQL backends and their parallel
workers, MariaDB, kora's coordinator, its Ray workers, Ray's own processes. Every process on
the machine is sampled from /proc every ``--interval`` seconds (a process's last sample before
it exits is what it is credited with, so processes shorter than an interval are missed) and
its CPU seconds since the command started are summed by kind. ``--busy`` also prints the
machine's busy percentage for every second (idle cores show as dips: start-up, a single-threaded
step). Linux only. The command's own output passes through; the report goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter

HZ = os.sysconf("SC_CLK_TCK")


def _kind(comm: str, cmd: str) -> str:
    """What a process is, from its name and command line."""
    if comm.startswith("postgres") or cmd.startswith("postgres"):
        return "postgresql parallel worker" if "parallel worker" in cmd else "postgresql"
    if comm in ("mariadbd", "mysqld"):
        return "mariadb server"
    if comm in ("mariadb", "mysql"):
        return "mariadb client"
    if comm == "psql":
        return "psql"
    if "MigrationWorker" in cmd or "MigrationWorker" in comm:
        return "kora ray worker"
    if "kora migrate" in cmd or "kora init" in cmd or "kora demo" in cmd:
        return "kora coordinator"
    if "/ray/" in cmd or "ray_agent_stub" in cmd or comm in ("raylet", "gcs_server") or comm.startswith("ray::"):
        return "ray (own processes)"
    if "watch_orphans" in cmd or comm == "tail":
        return "dagster log capture"
    if "pgloader" in comm or "sbcl" in comm:
        return "pgloader"
    return f"other ({comm})"


def _snapshot() -> dict[int, tuple[str, str, float, int]]:
    """pid -> (name, command line, CPU-s so far, start time): a pid reused by a new process, or a
    kernel worker renamed for its current work queue, is told apart by its start time."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:300]
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = (comm, cmd, (int(fields[11]) + int(fields[12])) / HZ, int(fields[19]))
    return out


def _machine() -> tuple[int, int]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # all ticks, idle + iowait ticks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Put the command after --.")
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between samples (default 0.25)")
    ap.add_argument("--busy", action="store_true", help="also print the machine's busy %% for every second")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given (put it after --)")
    if not os.path.exists("/proc/stat"):
        ap.error("needs Linux's /proc")

    base, seen, kinds = _snapshot(), {}, {}
    t0, (all0, idle0) = time.monotonic(), _machine()
    busy, last, tick = [], _machine(), t0 + 1.0
    proc = subprocess.Popen(cmd)
    while proc.poll() is None:
        time.sleep(args.interval)
        for pid, (comm, line, cpu, started) in _snapshot().items():
            # the latest name wins (a pre-started ray::IDLE becomes a worker), but not an exited
            # process's empty command line, nor anything after it became a kora worker
            if pid not in kinds or (line.strip() and kinds[pid] != "kora ray worker"):
                kinds[pid] = _kind(comm, line)
            seen[pid] = (started, cpu)
        if args.busy and time.monotonic() >= tick:
            now = _machine()
            d = now[0] - last[0]
            busy.append(100.0 * (1 - (now[1] - last[1]) / d) if d else 0.0)
            last, tick = now, tick + 1.0
    wall = time.monotonic() - t0
    all1, idle1 = _machine()
    by = Counter()
    for pid, (started, cpu) in seen.items():
        before = base.get(pid)
        spent = cpu - (before[2] if before and before[3] == started else 0.0)
        if spent > 0.005:
            by[kinds[pid]] += spent
    total = (all1 - all0 - (idle1 - idle0)) / HZ
    err = sys.stderr
    print(f"\n{' '.join(cmd)[:120]}\nexit {proc.returncode}, wall {wall:.1f} s, machine busy {total:.1f} CPU-s "
          f"({100 * total / max(wall * (os.cpu_count() or 1), 1e-9):.0f}% of {os.cpu_count()} CPUs)", file=err)
    for kind, secs in by.most_common():
        if secs >= 0.1:
            print(f"  {secs:8.1f} CPU-s  {kind}", file=err)
    if busy:
        print("busy % per second: " + " ".join(f"{b:.0f}" for b in busy), file=err)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
