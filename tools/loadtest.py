"""Load test of ``edge-digits serve`` on loopback: requests/s and p50/p99 latency of ``POST /v1/classify``.

The load comes from wrk (Debian package ``wrk``), a second process with keep-alive connections,
bounded in time (``--duration`` per concurrency). Each request carries one MNIST test image as JSON.
The script starts the server itself (``--model``) or measures one already running (``--url``), and
also reports the server's CPU time per request (from /proc, all worker processes), which says more
than requests/s when the machine is shared, and the load average before each run.

    python tools/loadtest.py --model standard --concurrency 1,8,64 --duration 10 [--workers 2]
    python tools/loadtest.py --url http://127.0.0.1:8080 --concurrency 8

Prints a Markdown table (and ``--json`` writes the figures).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LUA = """
local f = io.open(os.getenv("LOADTEST_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LOADTEST %d %d %.3f %.3f %.3f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU time of the processes and their children so far."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])   # utime stime cutime cstime
        except (OSError, IndexError):
            pass
    return total / tick


def server_pids(root: int) -> list[int]:
    pids = [root]
    try:
        out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    return pids


def start_server(model: str, workers: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "edge_digits", "serve", "--model", model, "--port", "0",
                             "--workers", str(workers), *extra], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    m = re.search(r"(http://\S+:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, m.group(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="start a server for this model (a .tflite or standard/micro)")
    ap.add_argument("--url", help="measure a server already running here instead")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--server-arg", action="append", default=[], help="extra `edge-digits serve` option (repeatable)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if bool(args.model) == bool(args.url):
        raise SystemExit("give --model (start a server) or --url (use a running one)")

    from edge_digits.data import load_mnist

    image = load_mnist()[2][0]
    tmp = Path(tempfile.mkdtemp(prefix="loadtest-"))
    (tmp / "body.json").write_text(json.dumps({"images": [base64.b64encode(image.tobytes()).decode()]}))
    (tmp / "post.lua").write_text(LUA)
    env = dict(os.environ, LOADTEST_BODY=str(tmp / "body.json"))

    proc = None
    if args.model:
        proc, url = start_server(args.model, args.workers, args.server_arg)
    else:
        url = args.url.rstrip("/")
    rows = []
    try:
        for c in [int(v) for v in args.concurrency.split(",")]:
            threads = str(min(c, 2))
            wrk = ["wrk", "-t", threads, "-c", str(c), "-s", str(tmp / "post.lua"), f"{url}/v1/classify"]
            if args.warmup > 0:
                subprocess.run(wrk[:1] + ["-d", f"{args.warmup:g}s"] + wrk[1:], env=env, capture_output=True)
            load = Path("/proc/loadavg").read_text().split()[0]
            pids = server_pids(proc.pid) if proc else []
            cpu0 = cpu_seconds(pids)
            out = subprocess.run(wrk[:1] + ["-d", f"{args.duration:g}s", "--timeout", "5s"] + wrk[1:], env=env,
                                 capture_output=True, text=True).stdout
            cpu = cpu_seconds(pids) - cpu0
            m = re.search(r"LOADTEST (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) (\d+) (\d+)", out)
            if not m:
                raise SystemExit(f"wrk gave no result:\n{out}")
            n, dur_us = int(m.group(1)), int(m.group(2))
            row = {"concurrency": c, "requests": n, "seconds": dur_us / 1e6, "rps": n / (dur_us / 1e6),
                   "p50_ms": float(m.group(3)), "p99_ms": float(m.group(4)), "mean_ms": float(m.group(5)),
                   "socket_errors": int(m.group(6)), "non_2xx": int(m.group(7)), "loadavg_before": float(load),
                   "server_cpu_us_per_request": cpu / n * 1e6 if proc and n else None}
            rows.append(row)
            print(f"c={c}: {row['rps']:.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
                  file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    print("| concurrency | requests/s | p50 ms | p99 ms | errors (socket / non-2xx) | server CPU per request | "
          "load average before |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cpu = f"{r['server_cpu_us_per_request']:.0f} µs" if r["server_cpu_us_per_request"] else "-"
        print(f"| {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['socket_errors']} / {r['non_2xx']} | {cpu} | {r['loadavg_before']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"url": url, "workers": args.workers, "duration_s": args.duration,
                                         "cpus": os.cpu_count(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
