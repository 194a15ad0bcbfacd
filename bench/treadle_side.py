"""Treadle side of the benchmark: runs in the project's own virtualenv."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, ProcGroup, latency_summary, log, rate, wait_until
from bench.profiling import summarise_collapsed

if importlib.util.find_spec("treadle") is None:  # not pip-installed: use the src layout
    sys.path.insert(0, str(REPO_ROOT / "src"))


@dataclass
class WorkerSpec:
    processes: int
    concurrency: int
    lease_seconds: float = 30.0


def _treadle_cmd() -> list[str]:
    script = Path(sys.executable).with_name("treadle")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "treadle"]


def _app(url: str) -> Any:
    from bench.apps.noop_tasks import build_app

    app = build_app(url)
    migrate_for_workers(app)
    return app


def migrate_for_workers(app: Any) -> None:
    """Migrate as ``treadle migrate`` does: with the built-in job kinds ``treadle worker``
    serves (and whose schemas it checks) registered, where this Treadle has them."""
    try:
        from treadle.kinds import use_builtin
    except ImportError:
        pass
    else:
        use_builtin(app)
    app.migrate()


def _noop(app: Any) -> Any:
    """The registered task object (what ``@app.task`` returned)."""
    tasks = getattr(app, "tasks", None)
    if isinstance(tasks, dict) and "noop" in tasks:
        return tasks["noop"]
    getter = getattr(app, "get_task", None)
    if getter is not None:
        return getter("noop")
    raise RuntimeError("cannot find the registered 'noop' task on the Treadle app")


def _close(app: Any) -> None:
    closer = getattr(app, "close", None)
    if closer is not None:
        closer()
    else:
        with contextlib.suppress(Exception):
            app.store.close()


def _count_succeeded(app: Any) -> int:
    counts = app.store.count_by_status()
    return int(counts.get("succeeded", 0))


@contextlib.contextmanager
def _workers(
    url: str,
    spec: WorkerSpec,
    logdir: Path,
    tag: str,
    first_prefix: list[str] | None = None,
    app_ref: str = "bench.apps.treadle_app:app",
) -> Iterator[ProcGroup]:
    """Start ``spec.processes`` ``treadle worker`` processes; SIGTERM them on exit.

    ``first_prefix`` wraps the first worker (e.g. ``py-spy record ... --``); that wrapper is
    stopped by signalling its child, so the wrapper can write its output.
    """
    env = dict(os.environ)
    env["TREADLE_DATABASE_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "src")]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    group = ProcGroup()
    argv = [
        *_treadle_cmd(),
        "worker",
        "--app", app_ref,
        "--db", url,
        "--queues", "default",
        "--concurrency", str(spec.concurrency),
        "--lease-seconds", str(spec.lease_seconds),
        "--log-level", "warning",
    ]  # fmt: skip
    try:
        for i in range(spec.processes):
            prefix = first_prefix if (i == 0 and first_prefix) else []
            group.start(
                [*prefix, *argv], env=env, cwd=REPO_ROOT, log_path=logdir / f"treadle-{tag}-{i}.log"
            )
        yield group
    finally:
        if first_prefix and group.procs:
            wrapper = group.procs[0]
            for child in _children(wrapper.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                wrapper.wait(timeout=60)
        group.stop()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(c) for c in text)
    return out


# --------------------------------------------------------------------------- workloads


def enqueue(url: str, *, jobs: int, batch_size: int) -> dict[str, Any]:
    """Enqueue rate: one job per call (batch_size == 1) or defer_many of batch_size."""
    app = _app(url)
    noop = _noop(app)
    try:
        noop.defer(x=-1)  # warm up connections / prepared statements
        t0 = time.perf_counter()
        if batch_size <= 1:
            for i in range(jobs):
                noop.defer(x=i)
        else:
            for start in range(0, jobs, batch_size):
                n = min(batch_size, jobs - start)
                noop.defer_many([{"x": start + k} for k in range(n)])
        dt = time.perf_counter() - t0
    finally:
        _close(app)
    return {**rate(jobs, dt), "batch_size": max(1, batch_size)}


def _drain_window(app: Any) -> tuple[float, float, int]:
    """(first started_at, last finished_at, succeeded count) read from the store."""
    from treadle.core.lifecycle import JobStatus
    from treadle.store.base import JobFilter

    first: datetime | None = None
    last: datetime | None = None
    n = 0
    before: int | None = None
    while True:
        page = app.store.list_jobs(
            JobFilter(statuses=[JobStatus.SUCCEEDED], before_id=before, limit=1000)
        )
        if not page:
            break
        for j in page:
            n += 1
            if j.started_at is not None and (first is None or j.started_at < first):
                first = j.started_at
            if j.finished_at is not None and (last is None or j.finished_at > last):
                last = j.finished_at
        before = min(j.id for j in page)
    if first is None or last is None:
        raise RuntimeError("no started_at / finished_at timestamps on succeeded jobs")
    return first.timestamp(), last.timestamp(), n


def drain(
    url: str,
    *,
    jobs: int,
    spec: WorkerSpec,
    logdir: Path,
    profile_out: Path | None = None,
    timeout: float = 1800,
    analyze: bool = False,
    tenants: int = 1,
) -> dict[str, Any]:
    """Enqueue `jobs` first, then start the workers; rate from first start to last finish.

    With `tenants` > 1 the jobs are spread round-robin over that many tenants, so every
    claim goes through weighted tenant fairness (ADR 0010)."""
    app = _app(url)
    noop = _noop(app)
    try:
        for start in range(0, jobs, 1000):
            _fill(app, noop, start, min(1000, jobs - start), tenants)
        if analyze:
            _analyze(url)
        raw = logdir / "pyspy-drain.raw"
        raw.unlink(missing_ok=True)
        pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        prefix: list[str] | None = None
        if profile_out is not None and pyspy:
            # py-spy cannot attach to a busy process on this kernel, so it starts the worker.
            prefix = [pyspy, "record", "--rate", "200", "--format", "raw", "--output", str(raw),
                      "--"]  # fmt: skip
        wall0 = time.time()
        with _workers(url, spec, logdir, "drain", first_prefix=prefix) as group:

            def done() -> bool:
                group.check_alive()
                return _count_succeeded(app) >= jobs

            wait_until(done, timeout=timeout, interval=0.25, what=f"{jobs} jobs to succeed")
            wall1 = time.time()
        if profile_out is not None:
            if raw.exists():
                profile_out.write_text(
                    f"py-spy record (200 Hz) of one `treadle worker` process (of "
                    f"{spec.processes}, concurrency {spec.concurrency}) during a drain of {jobs} "
                    f"no-op jobs on {url.split(':', 1)[0]}. py-spy's default (non --idle) "
                    "mode; note that it still counts some blocking waits as active on this "
                    "machine (threading Condition.wait, the SimpleQueue.get inside "
                    "Worker._executor_body, psycopg Connection.wait = waiting for the server): "
                    "read those as time blocked, not CPU. Includes start-up and shutdown.\n\n"
                    + summarise_collapsed(raw)
                )
            else:
                log(f"py-spy produced no profile (py-spy found: {bool(pyspy)})")
        first, last, n = _drain_window(app)
    finally:
        _close(app)
    out: dict[str, Any] = dict(rate(n, last - first))
    out["source"] = "jobs.started_at / jobs.finished_at from the store"
    out["wall_seconds_from_worker_spawn"] = round(wall1 - wall0, 4)
    return out


def latency(
    url: str,
    *,
    jobs: int,
    interval: float,
    spec: WorkerSpec,
    logdir: Path,
    warmup: int = 20,
) -> dict[str, Any]:
    """Enqueue-to-start latency with idle workers: one job every `interval` seconds."""
    app = _app(url)
    noop = _noop(app)
    try:
        with _workers(url, spec, logdir, "latency") as group:
            warm = [noop.defer(x=-1) for _ in range(warmup)]
            for h in warm:
                h.wait(timeout=60)
            group.check_alive()
            time.sleep(1.0)
            sent: list[tuple[int, float]] = []
            for i in range(jobs):
                t0 = time.time()
                h = noop.defer(x=i)
                sent.append((h.id, t0))
                time.sleep(interval)

            def done() -> bool:
                group.check_alive()
                return _count_succeeded(app) >= warmup + jobs

            wait_until(done, timeout=120, interval=0.05, what="latency jobs")
        samples: list[float] = []
        for jid, t0 in sent:
            job = app.get_job(jid)
            samples.append((float(job.result) - t0) * 1000.0)
    finally:
        _close(app)
    return {**latency_summary(samples), "interval_s": interval}


def _fill(app: Any, noop: Any, start: int, n: int, tenants: int) -> None:
    if tenants <= 1:
        noop.defer_many([{"x": start + k} for k in range(n)])
    else:
        app.enqueue([noop.new_job({"x": start + k}, tenant=f"t{(start + k) % tenants}")
                     for k in range(n)])


def claim_latency(
    urls: dict[int, str], *, samples: int, rounds: int = 10, analyze: bool = True,
    tenants: int = 1,
) -> dict[str, Any]:
    """Time single-job claim calls with different queue depths (one fresh database each).

    Depths are measured in interleaved rounds so that load from elsewhere on the machine
    falls on every depth alike. Each depth is measured as enqueued and again after ANALYZE.
    """
    apps: dict[int, Any] = {}
    out: dict[str, Any] = {}
    try:
        for depth, url in urls.items():
            app = apps[depth] = _app(url)
            noop = _noop(app)
            t0 = time.perf_counter()
            for start in range(0, depth, 5000):
                _fill(app, noop, start, min(5000, depth - start), tenants)
            fill_s = time.perf_counter() - t0
            log(f"  queued {depth} jobs in {fill_s:.1f}s")
            out[str(depth)] = {"depth": depth, "fill_seconds": round(fill_s, 2)}
            for _ in range(5):  # warm-up, not counted
                app.store.claim(queues=["default"], worker="bench", limit=1, lease_seconds=300.0)
        phases = ["as_enqueued", "after_analyze"] if analyze else ["as_enqueued"]
        per_round = max(1, samples // rounds)
        for phase in phases:
            if phase == "after_analyze":
                for url in urls.values():
                    _analyze(url)
            times: dict[int, list[float]] = {d: [] for d in urls}
            for _ in range(rounds):
                for depth, app in apps.items():
                    for _ in range(per_round):
                        c0 = time.perf_counter()
                        got = app.store.claim(
                            queues=["default"], worker="bench", limit=1, lease_seconds=300.0
                        )
                        times[depth].append((time.perf_counter() - c0) * 1000.0)
                        if len(got) != 1:
                            raise RuntimeError(f"claim returned {len(got)} jobs, expected 1")
            for depth, ts in times.items():
                out[str(depth)][phase] = latency_summary(ts)
    finally:
        for app in apps.values():
            _close(app)
    return out


def _analyze(url: str) -> None:
    """Refresh planner statistics (what autovacuum / a periodic ANALYZE would do)."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    elif url.startswith("sqlite"):
        import sqlite3

        path = url.split("sqlite:///", 1)[1].split("?", 1)[0]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("ANALYZE")
            conn.commit()


def treadle_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("treadle")
    except PackageNotFoundError:
        import treadle

        return str(getattr(treadle, "__version__", "unknown"))
