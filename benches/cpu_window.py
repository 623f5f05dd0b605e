#!/usr/bin/env python3
"""CPU per request of one load-bench scenario, for A/B comparisons on a noisy machine.

    benches/cpu_window.py LABEL target/release/deps/load-<hash> --scenarios repeat_view \
        --connections 64 --seconds 8

Runs the load bench binary (`cargo bench --bench load --no-run` prints its path) with the
given arguments. When the bench announces the scenario's timed window on stderr
("repeat_view: 64 connections, 8 s"), it reads the machine's CPU counters (/proc/stat) and the
bench process's own (/proc/PID/stat) 0.5 s into the window and 0.5 s before its end. Prints one
line: the scenario's req/s and p99 from the bench's table, the cores busy in the window (all
processes: on PostgreSQL the server's too), the bench process's share, and CPU-µs per request.

When the machine is saturated (busy ≈ the number of cores) throughput is cores ÷ CPU per
request, so two builds are compared by what a request costs, run alternately (A-B-B-A) so the
machine's drift falls on both. Standard library only. Used in BENCHMARKS.md.
"""
import os
import re
import subprocess
import sys
import threading
import time

SCENARIO = os.environ.get("CPU_WINDOW_SCENARIO", "repeat_view")


def machine():
    """(busy, total) jiffies of all CPUs; idle and iowait are the idle part."""
    fields = list(map(int, open("/proc/stat").readline().split()[1:9]))
    return sum(fields) - fields[3] - fields[4], sum(fields)


def process(pid):
    """utime + stime of `pid`, in clock ticks."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    label, binary, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    window = {}
    bench = subprocess.Popen(
        [binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def watch():
        for line in bench.stderr:
            if line.startswith(f"{SCENARIO}:") and "connections" in line:
                seconds = float(re.search(r"([\d.]+) s", line).group(1))
                time.sleep(0.5)
                m0, p0, t0 = machine(), process(bench.pid), time.time()
                time.sleep(seconds - 1.0)
                m1, p1, t1 = machine(), process(bench.pid), time.time()
                window["busy"] = (m1[0] - m0[0]) / (m1[1] - m0[1]) * os.cpu_count()
                window["own"] = (p1 - p0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out = bench.stdout.read()
    bench.wait()
    watcher.join()
    row = re.search(
        rf"^\| {SCENARIO} \| (\d+) \| (\d+) \| ([\d.]+) \| (\d+) \|[^|]*\|[^|]*\| ([\d.]+) \|",
        out,
        re.M,
    )
    if bench.returncode != 0 or row is None or "busy" not in window:
        sys.exit(f"{label}: the bench failed or printed no {SCENARIO} row\n{out}")
    rate, p99 = float(row.group(4)), row.group(5)
    busy, own = window["busy"], window["own"]
    print(
        f"{label}\t{rate:.0f} req/s\tp99 {p99} ms\tbusy {busy:.2f} cores "
        f"(bench process {own:.2f})\t{busy / rate * 1e6:.1f} CPU-us/req "
        f"(process {own / rate * 1e6:.1f}, rest {(busy - own) / rate * 1e6:.1f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
