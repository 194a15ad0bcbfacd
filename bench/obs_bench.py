"""What usage accounting and tracing cost on the hot path (ADRs 0021, 0022).

Two measurements per backend, interleaved repeats, medians:

* ``complete``: the store's batch completion of claimed jobs, outcomes without usage vs
  with usage (the extra INSERT on SQLite, the extra CTE on PostgreSQL), per job;
* ``drain``: an in-process worker (concurrency 8) draining no-op jobs, tracing off vs on
  (OpenTelemetry SDK, batching processor, an exporter that drops spans: the cost of making
  spans, not of shipping them), jobs/s.

    .venv/bin/python -m bench.obs_bench [--jobs 2000] [--repeats 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from treadle import Treadle
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage
from treadle.otel import OtelTracing
from treadle.testing import run_worker

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_CREATED: list[str] = []


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _fresh(backend: str, tmp: Path, n: int) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/b{n}.db"
    import psycopg

    name = f"treadle_obs_bench_{os.getpid()}_{n}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    _CREATED.append(name)
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _app(url: str, tracing: OtelTracing | None = None) -> Treadle:
    app = Treadle(url, tracing=tracing)

    @app.task(name="noop")
    def noop() -> None:
        return None

    app.migrate()
    return app


def complete_cost(url: str, jobs: int, with_usage: bool) -> float:
    """Seconds per job of ``store.complete`` over claimed batches of 100."""
    app = _app(url)
    try:
        app.get_task("noop").defer_many([{}] * jobs)
        spent = 0.0
        usage = Usage(wall_seconds=0.01, cpu_seconds=0.005, result_bytes=4, log_bytes=10)
        while True:
            claimed = app.store.claim(queues=None, worker="bench", limit=100, lease_seconds=60)
            if not claimed:
                break
            outs = [Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "bench",
                            usage=usage if with_usage else None) for j in claimed]
            t0 = time.perf_counter()
            app.store.complete(outs)
            spent += time.perf_counter() - t0
        return spent / jobs
    finally:
        app.close()


def drain_rate(url: str, jobs: int, traced: bool) -> float:
    provider = None
    tracing = None
    if traced:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(_Drop()))
        tracing = OtelTracing(provider=provider)
    app = _app(url, tracing)
    try:
        app.get_task("noop").defer_many([{}] * jobs)
        t0 = time.perf_counter()
        with run_worker(app, concurrency=8, burst=True, poll_interval=0.05) as w:
            while w.processed < jobs:
                time.sleep(0.002)
        return jobs / (time.perf_counter() - t0)
    finally:
        app.close()
        if provider is not None:
            provider.shutdown()


def _drop_created() -> None:
    if not _CREATED:
        return
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for name in _CREATED:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _CREATED.clear()


def _median_pairs(run: Callable[[bool], float], repeats: int) -> tuple[list[float], list[float]]:
    off, on = [], []
    for i in range(repeats):  # interleaved, alternating which goes first
        order = (False, True) if i % 2 == 0 else (True, False)
        for flag in order:
            (on if flag else off).append(run(flag))
    return off, on


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "jobs": args.jobs,
                               "repeats": args.repeats, "load_before": load_before}
    counter = iter(range(10_000))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            def fresh(b: str = backend) -> str:
                return _fresh(b, Path(tmp), next(counter))

            c_off, c_on = _median_pairs(
                lambda flag: complete_cost(fresh(), args.jobs, flag), args.repeats)
            d_off, d_on = _median_pairs(
                lambda flag: drain_rate(fresh(), args.jobs, flag), args.repeats)
            results[backend] = {
                "complete_us_per_job": {"without_usage": [x * 1e6 for x in c_off],
                                        "with_usage": [x * 1e6 for x in c_on]},
                "drain_jobs_per_s": {"tracing_off": d_off, "tracing_on": d_on},
            }
    _drop_created()
    results["load_after"] = subprocess.run(["uptime"], capture_output=True,
                                           text=True).stdout.strip()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "obs.json").write_text(text + "\n")
        (args.out / "obs.md").write_text(_report(results))


def _report(r: dict[str, Any]) -> str:
    med = statistics.median
    lines = [
        "# Usage accounting and tracing on the hot path (ADRs 0021, 0022)",
        "",
        f"{r['when']}: {r['jobs']} no-op jobs per run, {r['repeats']} interleaved repeats, "
        "medians. In-process worker, concurrency 8. The machine (2 cores) is shared with "
        "other sessions' builds and tests, so absolute figures are noisy; the ratios "
        "within a backend are what this measures.",
        "",
        f"- load before: `{r['load_before']}`",
        f"- load after: `{r['load_after']}`",
        "",
        "| backend | complete, µs/job, no usage | with usage | ratio | drain jobs/s, tracing "
        "off | tracing on | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend in ("sqlite", "postgres"):
        if backend not in r:
            continue
        c = r[backend]["complete_us_per_job"]
        d = r[backend]["drain_jobs_per_s"]
        c0, c1 = med(c["without_usage"]), med(c["with_usage"])
        d0, d1 = med(d["tracing_off"]), med(d["tracing_on"])
        lines.append(f"| {backend} | {c0:.1f} | {c1:.1f} | {c1 / c0:.2f}x | {d0:.0f} | "
                     f"{d1:.0f} | {d1 / d0:.2f}x |")
    lines += ["", "Raw figures: `obs.json`. Run: `.venv/bin/python -m bench.obs_bench "
              "--out bench/results`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
