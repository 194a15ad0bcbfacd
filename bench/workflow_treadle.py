"""Treadle side of the workflow benchmark (ADR 0009): runs in the project's own virtualenv.

A run: start ``spec.processes`` ``treadle worker`` processes, warm them up with a few
workflows of the same shape, pause the queue, enqueue ``workflows`` jobs of
``bench_wf(n=steps)`` in one transaction, unpause, and wait until all succeeded. Each
workflow is a job of kind ``workflow``; each ``ctx.step`` checkpoints its result in the
store before the workflow goes on. Figures come from the job rows: the window is first
``started_at`` to last ``finished_at``; a workflow's duration is its ``finished_at -
started_at``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import log, wait_until
from bench.treadle_side import WorkerSpec, _close, _workers, migrate_for_workers

APP_REF = "bench.apps.workflow_app:app"


def _build(url: str) -> Any:
    from bench.apps.workflow_tasks import build_app

    app = build_app(url)
    migrate_for_workers(app)
    return app


def _workflow(app: Any, name: str) -> Any:
    tasks = getattr(app, "tasks", None)
    if isinstance(tasks, dict) and name in tasks:
        return tasks[name]
    for attr in ("workflows", "get_workflow", "get_task"):
        obj = getattr(app, attr, None)
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if callable(obj):
            return obj(name)
    raise RuntimeError(f"cannot find the registered workflow {name!r} on the Treadle app")


def _enqueue(wf: Any, payloads: list[dict[str, Any]]) -> list[Any]:
    many = getattr(wf, "defer_many", None)
    if many is not None:
        return list(many(payloads))
    return [wf.defer(**p) for p in payloads]


def _finished(app: Any, name: str) -> list[Any]:
    from treadle.core.lifecycle import JobStatus
    from treadle.store.base import JobFilter

    out: list[Any] = []
    before: int | None = None
    while True:
        page = app.store.list_jobs(
            JobFilter(task=name, statuses=[JobStatus.SUCCEEDED], before_id=before, limit=1000)
        )
        if not page:
            return out
        out.extend(page)
        before = min(j.id for j in page)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the worker processes (all their threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def _check_no_failures(app: Any) -> None:
    counts = app.store.count_by_status()
    bad = {k: v for k, v in counts.items() if k in ("failed", "dead", "cancelled") and v}
    if bad:
        raise RuntimeError(f"workflow jobs did not succeed: {bad}")


def run(
    url: str,
    *,
    steps: int,
    workflows: int,
    spec: WorkerSpec,
    logdir: Path,
    warmup: int = 3,
    timeout: float = 900,
) -> dict[str, Any]:
    from bench.apps.workflow_tasks import WARMUP, WORKFLOW

    app = _build(url)
    try:
        wf = _workflow(app, WORKFLOW)
        warm = _workflow(app, WARMUP)
        with _workers(url, spec, logdir, f"wf{steps}", app_ref=APP_REF) as group:
            n_warm = warmup * spec.processes
            _enqueue(warm, [{"n": steps}] * n_warm)

            def warmed_up() -> bool:
                group.check_alive()
                _check_no_failures(app)
                return int(app.store.count_by_status().get("succeeded", 0)) >= n_warm

            wait_until(warmed_up, timeout=120, interval=0.1, what="warm-up workflows")

            def all_registered() -> bool:
                group.check_alive()
                return len(app.store.worker_processes()) >= spec.processes

            wait_until(all_registered, timeout=60, what="every worker to register")
            app.store.set_queue("default", paused=True)
            t0 = time.perf_counter()
            _enqueue(wf, [{"n": steps}] * workflows)
            enqueue_s = time.perf_counter() - t0
            time.sleep(0.5)  # every worker idle and polling when the queue opens
            pids = [p.pid for p in group.procs]
            cpu0 = _cpu_seconds(pids)
            app.store.set_queue("default", paused=False)

            def done() -> bool:
                group.check_alive()
                _check_no_failures(app)
                succeeded = int(app.store.count_by_status().get("succeeded", 0))
                return succeeded >= workflows + n_warm

            wait_until(done, timeout=timeout, interval=0.1, what=f"{workflows} workflows")
            cpu = _cpu_seconds(pids) - cpu0
        jobs = _finished(app, WORKFLOW)
    finally:
        _close(app)
    if len(jobs) != workflows:
        raise RuntimeError(f"{len(jobs)} {WORKFLOW} jobs succeeded, expected {workflows}")
    results = {j.result for j in jobs}
    if results != {steps}:
        raise RuntimeError(f"unexpected workflow results: {sorted(results, key=repr)[:5]}")
    starts = [j.started_at.timestamp() for j in jobs]
    ends = [j.finished_at.timestamp() for j in jobs]
    durations = sorted((e - s) * 1000.0 for s, e in zip(starts, ends, strict=True))
    seconds = max(ends) - min(starts)
    log(f"  treadle {steps} steps: {workflows / seconds:.1f} wf/s")
    return {
        "workflows": workflows,
        "steps": steps,
        "procs": spec.processes,
        "threads": spec.concurrency,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu, 4),
        "workflows_per_s": round(workflows / seconds, 2),
        "duration_median_ms": round(statistics.median(durations), 4),
        "duration_mean_ms": round(statistics.fmean(durations), 4),
        "duration_p95_ms": round(durations[int(0.95 * (len(durations) - 1))], 4),
        "enqueue_seconds": round(enqueue_s, 4),
        "source": "window: jobs' first started_at to last finished_at; durations: "
        "finished_at - started_at per workflow job",
    }
