"""The hand-off benchmark's peer-side driver (issue 13), shared by Huey and Dramatiq.

Each peer script supplies: how to clear its broker, enqueue one job, and start its worker
processes. Drain and pickup latency are read back from the file the jobs append to
(``append_task.py``), the same way for every system. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from append_task import count_lines, read_lines


@dataclass
class Peer:
    clear: Callable[[], None]
    enqueue: Callable[[str, int, float], None]
    start: Callable[[argparse.Namespace, Path], list[subprocess.Popen[bytes]]]
    versions: Callable[[], dict[str, str]]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)  # graceful in Huey and Dramatiq
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_lines(path: str, n: int, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count_lines(path) < n:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args!r} exited early with {p.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count_lines(path)}/{n} lines")
        time.sleep(0.05)


def drain(peer: Peer, a: argparse.Namespace) -> dict[str, Any]:
    peer.clear()
    Path(a.path).unlink(missing_ok=True)
    t0 = time.perf_counter()
    for i in range(a.jobs):
        peer.enqueue(a.path, i, 0.0)
    enqueue_s = time.perf_counter() - t0
    wall0 = time.time()
    procs = peer.start(a, Path(a.logdir))
    try:
        _wait_lines(a.path, a.jobs, procs, a.timeout)
        wall1 = time.time()
    finally:
        _stop(procs)
    lines = read_lines(a.path)
    starts = [s for _, _, s in lines]
    peer.clear()
    return {
        "jobs": len(lines),
        "seconds": max(starts) - min(starts),
        "source": "the appended file: first to last job start",
        "wall_seconds_from_worker_spawn": wall1 - wall0,
        "enqueue_seconds_untimed": enqueue_s,
    }


def latency(peer: Peer, a: argparse.Namespace) -> dict[str, Any]:
    peer.clear()
    Path(a.path).unlink(missing_ok=True)
    procs = peer.start(a, Path(a.logdir))
    try:
        for _ in range(a.warmup):
            peer.enqueue(a.path, -1, 0.0)
        _wait_lines(a.path, a.warmup, procs, 60)
        time.sleep(1.0)
        for i in range(a.jobs):
            peer.enqueue(a.path, i, time.time())
            time.sleep(a.interval)
        _wait_lines(a.path, a.warmup + a.jobs, procs, 60)
    finally:
        _stop(procs)
    samples = [(s - e) * 1000.0 for i, e, s in read_lines(a.path) if i >= 0]
    peer.clear()
    return {"samples_ms": samples, "missing": a.jobs - len(samples)}


def main(peer: Peer) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["drain", "latency", "versions"])
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--path", default="/tmp/treadle-bench-append.txt")
    p.add_argument("--logdir", default="/tmp")
    a = p.parse_args()
    if a.command == "versions":
        out: dict[str, Any] = peer.versions()
    else:
        out = {"drain": drain, "latency": latency}[a.command](peer, a)
    print(json.dumps(out), flush=True)
