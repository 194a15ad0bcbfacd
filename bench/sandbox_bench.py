"""Sandbox start-up and run latency, and trivial-run throughput (ADRs 0101, 0401).

Run from the repo root: .venv/bin/python bench/sandbox_bench.py [--quick]
Writes bench/results/sandbox.json and bench/results/sandbox.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from treadle.sandbox import Limits, SandboxManager, WorkerSpec  # noqa: E402
from treadle.sandbox.bindings import Bindings, HostCalls  # noqa: E402
from treadle.sandbox.py_host import PyInstance  # noqa: E402

JS = WorkerSpec(code="function handler(i) { return i + 1 }", language="javascript")
PY = WorkerSpec(code="def handler(i, env):\n    return i + 1", language="python")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, start: list[float], total: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(total),
        "start_p50_ms": round(statistics.median(start), 3) if start else None,
        "start_p99_ms": round(pct(start, 0.99), 3) if start else None,
        "run_p50_ms": round(statistics.median(total), 3),
        "run_p99_ms": round(pct(total, 0.99), 3),
    }


def bench_subprocess(n: int) -> dict[str, Any]:
    total = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "print(1 + 1)"], check=True, capture_output=True)
        total.append((time.perf_counter() - t) * 1000)
    return summary("plain subprocess.run([python, -c]) (no sandbox)", [], total)


def bench_py_cold(n: int) -> dict[str, Any]:
    start, total = [], []
    for _ in range(n):
        t = time.perf_counter()
        inst = PyInstance(64 << 20)
        calls = HostCalls(PY, PY.limits, Bindings(), None)
        _, _, started = inst.run(PY, PY.limits, "1", calls, keep=False, tmp_bytes=64 << 20)
        end = time.perf_counter()
        start.append(((started or end) - t) * 1000)
        total.append((end - t) * 1000)
    return summary("Python cold start (new bwrap + interpreter)", start, total)


def bench_manager(
    name: str, run: Callable[[], Any], n: int, between: Callable[[], None] | None = None
) -> dict[str, Any]:
    start, total = [], []
    for _ in range(n):
        if between is not None:
            between()
        r = run()
        start.append(r.start_ms)
        total.append(r.duration_ms)
    return summary(name, start, total)


def throughput(name: str, run: Callable[[int], Any], seconds: float, threads: int = 2) -> dict:
    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop(k: int) -> None:
        while time.monotonic() < stop:
            run(k)
            with lock:
                count[0] += 1

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "name": name,
        "threads": threads,
        "runs": count[0],
        "runs_per_s": round(count[0] / elapsed, 1),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    n = 30 if quick else 100
    secs = 2.0 if quick else 5.0
    results: list[dict[str, Any]] = []
    with SandboxManager(python_pool_size=2, js_hosts=2) as mgr:
        mgr.warm_up()
        for _ in range(20):  # warm V8 and the code paths
            mgr.load(JS, 1, tenant="bench")
            mgr.get(JS, 1, tenant="bench")
        results.append(bench_subprocess(max(10, n // 4)))
        results.append(bench_py_cold(max(10, n // 4)))
        results.append(
            bench_manager(
                "Python load from the warm pool",
                lambda: mgr.load(PY, 1, tenant="bench"),
                n,
                between=lambda: mgr._pool.wait_full(10),
            )
        )
        results.append(
            bench_manager("Python get (warm)", lambda: mgr.get(PY, 1, tenant="bench"), n * 3)
        )
        results.append(
            bench_manager("JS load (fresh isolate)", lambda: mgr.load(JS, 1, tenant="bench"), n * 3)
        )
        results.append(
            bench_manager("JS get (warm isolate)", lambda: mgr.get(JS, 1, tenant="bench"), n * 10)
        )
        tp = [
            throughput("JS get", lambda k: mgr.get(JS, k, tenant=f"b{k}"), secs),
            throughput("JS load", lambda k: mgr.load(JS, k, tenant="b"), secs),
            throughput("Python get", lambda k: mgr.get(PY, k, tenant=f"b{k}"), secs),
            throughput(
                "Python load (pool refills in background)",
                lambda k: mgr.load(PY, k, tenant="b"),
                secs,
            ),
        ]
    doc = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "limits": Limits().to_dict(),
        "latency": results,
        "throughput": tp,
        "targets": {"js_get_p50_ms": 1.0, "js_load_p50_ms": 20.0, "py_pool_load_p50_ms": 30.0},
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sandbox.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Sandbox benchmark",
        "",
        f"Date: {doc['date']} · nproc: {os.cpu_count()} · {platform.platform()} · "
        f"Python {platform.python_version()}",
        "",
        "start = request to user code starting; run = request to result (end to end), ms.",
        "",
        "| scenario | n | start p50 | start p99 | run p50 | run p99 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['n']} | {r['start_p50_ms'] or '-'} | "
            f"{r['start_p99_ms'] or '-'} | {r['run_p50_ms']} | {r['run_p99_ms']} |"
        )
    lines += [
        "",
        "| throughput (trivial runs) | threads | runs | runs/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for t in tp:
        lines.append(f"| {t['name']} | {t['threads']} | {t['runs']} | {t['runs_per_s']} |")
    lines += ["", "Targets: JS get p50 < 1 ms, JS load < 20 ms, Python from warm pool < 30 ms."]
    (out / "sandbox.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
