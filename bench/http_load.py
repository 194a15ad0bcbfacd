"""Low-CPU load for the HTTP bench (ADR 0026): ``wrk`` driving ``POST /v1/jobs``, and the
server's CPU time (its whole process tree, with ``--workers``; per thread otherwise).

``wrk`` (Debian: ``apt-get install -y wrk``) is C on epoll: on a 2-core machine where
load generator, server and database share the cores, it leaves the server most of
what a Python client would take, so the figure is closer to the server's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# wrk's Lua: every request is the same POST; `done` prints what the harness parses.
_SCRIPT = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"

local bad = 0
function response(status, headers, body)
  if status ~= 202 then bad = bad + 1 end
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "socket_errors": %%d, '
      .. '"p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def bench_submit_wrk(port: int, clients: int, seconds: float, admin_key: str,
                     body: bytes, threads: int = 2) -> dict[str, float]:
    """``POST /v1/jobs`` from ``clients`` keep-alive connections for ``seconds``.

    Returns requests, jobs/s, latency p50/p99 (ms). A non-202 answer or a socket error
    fails the run: the figure is of accepted submissions only. Note that the `response`
    hook makes wrk parse each answer in Lua (a little more client CPU, still far less
    than Python)."""
    if not wrk_available():
        raise RuntimeError("wrk is not installed (Debian: apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_SCRIPT % {"body": json.dumps(body.decode()), "key": admin_key})
        script = f.name
    try:
        proc = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
             "--timeout", "30s", "-s", script, f"http://127.0.0.1:{port}/v1/jobs"],
            capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        os.unlink(script)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WRK ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    out = json.loads(line[4:])
    non_2xx = next((int(x.split(":")[1]) for x in proc.stdout.splitlines()
                    if "Non-2xx" in x), 0)
    if out["socket_errors"] or non_2xx:
        raise RuntimeError(f"wrk: {non_2xx} non-2xx answers, {out['socket_errors']} socket "
                           f"errors: {proc.stdout[-500:]}")
    return {"requests": float(out["requests"]),
            "jobs_per_s": out["requests"] / (out["duration_us"] / 1e6),
            "p50_ms": out["p50_us"] / 1000, "p99_ms": out["p99_us"] / 1000}


def _stat_cpu(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (``--workers`` children)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += _stat_cpu(Path(f"/proc/{p}/stat").read_text())
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue  # exited meanwhile
    return total


def loop_cpu_seconds(pid: int) -> float:
    """CPU of ``pid``'s main thread: uvicorn's event loop (HTTP, routing, validation);
    the rest of the process is the group committers and the thread pool."""
    return _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat").read_text())
