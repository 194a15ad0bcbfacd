"""Core benchmark runner: Treadle (SQLite, PostgreSQL) vs procrastinate and Celery.

Run from the repo root with the project's virtualenv::

    .venv/bin/python -m bench                       # full run (writes bench/results/)
    .venv/bin/python -m bench --quick               # small smoke run
    .venv/bin/python -m bench --backends postgres --peers procrastinate --skip-million

Workloads (no-op jobs, same machine, same job counts, same worker-process count):
  1. enqueue rate: one job per call, and batches of --batch-size per call;
  2. drain: --jobs enqueued first, then --workers worker processes; jobs/s from the first
     job start to the last completion, read from each system's own record;
  3. enqueue-to-start latency at low load: --latency-jobs enqueued one at a time,
     --latency-interval apart, idle workers waiting; p50/p95/p99;
  4. claim latency (Treadle): one single-job claim call with 1,000 vs 1,000,000 queued.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import math
import os
import statistics
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    dump_json,
    fresh_pg_database,
    fresh_sqlite_path,
    latency_summary,
    log,
    machine_info,
    pg_server_version,
    rate,
    redis_server_version,
)
from bench.report import render_markdown

ALL_BACKENDS = ("sqlite", "postgres")
ALL_PEERS = ("procrastinate", "celery")


def _csv(value: str, allowed: tuple[str, ...]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backends",
        type=lambda v: _csv(v, ALL_BACKENDS),
        default=list(ALL_BACKENDS),
        help="Treadle backends (or 'none')",
    )
    p.add_argument(
        "--peers",
        type=lambda v: _csv(v, ALL_PEERS),
        default=list(ALL_PEERS),
        help="peer systems (or 'none')",
    )
    p.add_argument("--jobs", type=int, default=20_000, help="jobs per drain run")
    p.add_argument("--enqueue-single-jobs", type=int, default=2_000)
    p.add_argument(
        "--enqueue-batch-jobs",
        type=int,
        default=None,
        help="jobs for the batch-enqueue test (default: --jobs)",
    )
    p.add_argument("--batch-size", type=int, default=1_000)
    p.add_argument("--latency-jobs", type=int, default=300)
    p.add_argument("--latency-interval", type=float, default=0.02, help="seconds between jobs")
    p.add_argument("--workers", type=int, default=4, help="worker processes, every system")
    p.add_argument(
        "--concurrency",
        type=int,
        default=10,
        help="in-process concurrency of each Treadle / procrastinate worker process; default "
        "10 = `treadle worker`'s own default (Celery: prefork pool of --workers processes)",
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats of drain and enqueue")
    p.add_argument("--claim-depths", default="1000,1000000")
    p.add_argument("--tenants", type=int, default=1,
                   help="spread drain and claim jobs over this many tenants (fairness on)")
    p.add_argument("--claim-samples", type=int, default=200)
    p.add_argument(
        "--skip-million", action="store_true", help="skip the 1,000,000-queued claim test"
    )
    p.add_argument(
        "--no-peer-claim",
        dest="peer_claim",
        action="store_false",
        help="skip procrastinate's claim-latency measurement (optional)",
    )
    p.add_argument(
        "--peer-claim-samples",
        type=int,
        default=50,
        help="claim calls per depth for procrastinate (each can take ~1 s at 1M queued)",
    )
    p.add_argument(
        "--analyze-before-drain",
        action="store_true",
        help="ANALYZE the database after the drain's jobs are enqueued, before the workers "
        "start (PostgreSQL/SQLite systems); default: measure as enqueued",
    )
    p.add_argument(
        "--tag",
        default="",
        help="suffix for the result files: core-<date>-<tag>.json and core-<tag>.md",
    )
    p.add_argument("--no-profile", action="store_true", help="no py-spy profile of a worker")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small smoke run (nothing written to bench/results unless --output is given)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results directory (default bench/results; --quick: a temp dir)",
    )
    p.add_argument(
        "--workloads",
        default="enqueue,drain,latency,claim",
        help="subset of enqueue,drain,latency,claim",
    )
    a = p.parse_args(argv)
    if a.quick:
        a.jobs = min(a.jobs, 2_000)
        a.enqueue_single_jobs = min(a.enqueue_single_jobs, 300)
        a.latency_jobs = min(a.latency_jobs, 50)
        a.repeats = 1
        a.claim_samples = min(a.claim_samples, 50)
        a.claim_depths = "1000,20000"
    if a.enqueue_batch_jobs is None:
        a.enqueue_batch_jobs = a.jobs
    depths = [int(d) for d in a.claim_depths.split(",") if d]
    if a.skip_million:
        depths = [d for d in depths if d < 1_000_000]
    a.depths = depths
    a.workload_set = set(_csv(a.workloads, ("enqueue", "drain", "latency", "claim")))
    return a


RunFn = Callable[[], dict[str, Any]]
REPEATED = ("enqueue_single", "enqueue_batch", "drain")
ORDER = ("enqueue_single", "enqueue_batch", "drain", "latency", "claim")


class Recorder:
    """Collects results and errors; a failing run never stops the others."""

    def __init__(self) -> None:
        self.systems: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, dict[str, str]] = {}

    def fail(self, system: str, workload: str, exc: BaseException) -> None:
        log(f"{system}: {workload} FAILED: {exc!r}")
        self.errors.setdefault(system, {})[workload] = (
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
        )

    def once(self, system: str, workload: str, fn: RunFn) -> dict[str, Any] | None:
        if workload in self.errors.get(system, {}):
            return None  # an earlier repeat failed: don't keep hammering
        log(f"{system}: {workload} ...")
        load = [round(x, 2) for x in os.getloadavg()]
        try:
            value = fn()
        except Exception as exc:
            self.fail(system, workload, exc)
            return None
        value["loadavg_before"] = load
        log(f"{system}: {workload} -> {_brief(value)}")
        return value


def _brief(v: dict[str, Any]) -> str:
    keys = ("jobs_per_s", "p50_ms", "p95_ms", "p99_ms", "ratio_p50")
    return ", ".join(f"{k}={v[k]}" for k in keys if k in v) or str(list(v))[:120]


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    vals = [float(r["jobs_per_s"]) for r in runs]
    return {
        "runs": runs,
        "median_jobs_per_s": round(statistics.median(vals), 1),
        "min_jobs_per_s": round(min(vals), 1),
        "max_jobs_per_s": round(max(vals), 1),
    }


@contextlib.contextmanager
def _db(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "postgres":
        with fresh_pg_database() as url:
            yield url
    else:
        with fresh_sqlite_path(tmp) as path:
            yield f"sqlite:///{path}"


def _claim_ratios(per_depth: dict[str, Any], depths: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"depths": per_depth}
    lo, hi = str(min(depths)), str(max(depths))
    if lo != hi:
        for phase in ("as_enqueued", "after_analyze"):
            if phase in per_depth[lo] and phase in per_depth[hi]:
                out[f"ratio_p50_{phase}"] = round(
                    per_depth[hi][phase]["p50_ms"] / per_depth[lo][phase]["p50_ms"], 2
                )
        out["ratio_p50"] = out.get("ratio_p50_as_enqueued")
    return out


# --------------------------------------------------------------------------- treadle


def treadle_runs(
    a: argparse.Namespace, backend: str, tmp: Path, out_dir: Path, profile: bool
) -> dict[str, Callable[..., dict[str, Any]]]:
    """One-run callables per workload for Treadle on `backend`."""
    from bench import treadle_side as ts

    spec = ts.WorkerSpec(processes=a.workers, concurrency=a.concurrency)
    logdir = tmp / f"treadle-{backend}"
    logdir.mkdir(parents=True, exist_ok=True)

    def enqueue_single() -> dict[str, Any]:
        with _db(backend, tmp) as url:
            return ts.enqueue(url, jobs=a.enqueue_single_jobs, batch_size=1)

    def enqueue_batch() -> dict[str, Any]:
        with _db(backend, tmp) as url:
            return ts.enqueue(url, jobs=a.enqueue_batch_jobs, batch_size=a.batch_size)

    def drain(last: bool = False) -> dict[str, Any]:
        prof = out_dir / "profile-drain.txt" if (profile and last) else None
        with _db(backend, tmp) as url:
            return ts.drain(
                url,
                jobs=a.jobs,
                spec=spec,
                logdir=logdir,
                profile_out=prof,
                analyze=a.analyze_before_drain,
                tenants=a.tenants,
            )

    def latency() -> dict[str, Any]:
        with _db(backend, tmp) as url:
            return ts.latency(
                url, jobs=a.latency_jobs, interval=a.latency_interval, spec=spec, logdir=logdir
            )

    def claim() -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            urls = {d: stack.enter_context(_db(backend, tmp)) for d in a.depths}
            per_depth = ts.claim_latency(urls, samples=a.claim_samples, tenants=a.tenants)
        return _claim_ratios(per_depth, a.depths)

    return {
        "enqueue_single": enqueue_single,
        "enqueue_batch": enqueue_batch,
        "drain": drain,
        "latency": latency,
        "claim": claim,
    }


# --------------------------------------------------------------------------- peers


def peer_runs(
    a: argparse.Namespace, tmp: Path, peer: str
) -> dict[str, Callable[..., dict[str, Any]]]:
    """One-run callables per workload for a peer (run in its own venv)."""
    from bench.venvs import run_peer as call

    logdir = tmp / peer
    logdir.mkdir(parents=True, exist_ok=True)
    common = ["--workers", str(a.workers), "--logdir", str(logdir)]
    if peer == "procrastinate":
        common += ["--concurrency", str(a.concurrency)]

    @contextlib.contextmanager
    def target() -> Iterator[list[str]]:
        if peer == "procrastinate":
            with fresh_pg_database("procrastinate_bench") as url:
                yield ["--dsn", url]
        else:
            yield []

    def enqueue(mode: str, jobs: int) -> RunFn:
        def one() -> dict[str, Any]:
            with target() as t:
                r = call(
                    peer, "enqueue", "--mode", mode, "--jobs", str(jobs),
                    "--batch-size", str(a.batch_size), *t, *common,
                )  # fmt: skip
            return {**rate(int(r["jobs"]), float(r["seconds"])), "batch_size": r["batch_size"]}

        return one

    def drain(last: bool = False) -> dict[str, Any]:
        with target() as t:
            extra = ["--analyze"] if (a.analyze_before_drain and peer == "procrastinate") else []
            r = call(peer, "drain", "--jobs", str(a.jobs), *t, *common, *extra)
        out: dict[str, Any] = dict(rate(int(r["jobs"]), float(r["seconds"])))
        out.update({k: v for k, v in r.items() if k not in ("jobs", "seconds")})
        return out

    def latency() -> dict[str, Any]:
        with target() as t:
            r = call(
                peer, "latency", "--jobs", str(a.latency_jobs),
                "--interval", str(a.latency_interval), *t, *common,
            )  # fmt: skip
        if r.get("missing"):
            raise RuntimeError(f"{r['missing']} latency samples missing")
        return {**latency_summary(r["samples_ms"]), "interval_s": a.latency_interval}

    def claim() -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            dsns = [stack.enter_context(fresh_pg_database("procrastinate_bench")) for _ in a.depths]
            r = call(
                peer, "claim", "--dsns", ",".join(dsns),
                "--depths", ",".join(str(d) for d in a.depths),
                "--samples", str(min(a.claim_samples, a.peer_claim_samples)),
            )  # fmt: skip
        per_depth: dict[str, Any] = {}
        for depth in a.depths:
            d = r[str(depth)]
            per_depth[str(depth)] = {
                "depth": depth,
                "fill_seconds": round(float(d["fill_seconds"]), 2),
                "as_enqueued": latency_summary(d["as_enqueued_ms"]),
                "after_analyze": latency_summary(d["after_analyze_ms"]),
            }
        return _claim_ratios(per_depth, a.depths)

    runs: dict[str, Callable[..., dict[str, Any]]] = {
        "enqueue_single": enqueue("single", a.enqueue_single_jobs),
        "enqueue_batch": enqueue("batch", a.enqueue_batch_jobs),
        "drain": drain,
        "latency": latency,
    }
    if peer == "procrastinate" and a.peer_claim:
        runs["claim"] = claim
    return runs


# --------------------------------------------------------------------------- orchestration


def run_all(
    a: argparse.Namespace,
    rec: Recorder,
    tmp: Path,
    out_dir: Path,
    versions: dict[str, Any],
    checkpoint: Callable[[], object] = lambda: None,
) -> None:
    """Workload by workload; repeats interleave the systems so that load from elsewhere on
    the (shared) machine falls on all of them alike."""
    from bench.venvs import ensure_venv
    from bench.venvs import run_peer as call

    systems: dict[str, dict[str, Callable[..., dict[str, Any]]]] = {}
    for peer in a.peers:
        try:
            ensure_venv(peer)
            versions[peer] = call(peer, "versions")
            systems[peer] = peer_runs(a, tmp, peer)
        except Exception as exc:
            rec.fail(peer, "venv", exc)
    profiled_backend = "postgres" if "postgres" in a.backends else (a.backends or [None])[0]
    for backend in a.backends:
        try:
            systems[f"treadle-{backend}"] = treadle_runs(
                a, backend, tmp, out_dir, profile=not a.no_profile and backend == profiled_backend
            )
        except Exception as exc:
            rec.fail(f"treadle-{backend}", "import", exc)
    order = sorted(systems, key=lambda s: (not s.startswith("treadle"), s))
    wanted = {
        "enqueue_single": "enqueue",
        "enqueue_batch": "enqueue",
        "drain": "drain",
        "latency": "latency",
        "claim": "claim",
    }
    for workload in ORDER:
        if wanted[workload] not in a.workload_set:
            continue
        if workload == "claim" and not a.depths:
            continue
        n = a.repeats if workload in REPEATED else 1
        collected: dict[str, list[dict[str, Any]]] = {s: [] for s in order}
        for r in range(n):
            for system in order:
                fn = systems[system].get(workload)
                if fn is None:
                    continue
                run: RunFn = functools.partial(fn, r == n - 1) if workload == "drain" else fn
                value = rec.once(system, workload, run)
                if value is not None:
                    collected[system].append(value)
        for system, runs in collected.items():
            if not runs:
                continue
            if workload in REPEATED:
                rec.systems.setdefault(system, {})[workload] = _aggregate(runs)
            else:
                rec.systems.setdefault(system, {})[workload] = runs[0]
        checkpoint()


# --------------------------------------------------------------------------- main


def _versions() -> dict[str, Any]:
    v: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        from bench.treadle_side import treadle_version

        v["treadle"] = treadle_version()
    except Exception as exc:
        v["treadle"] = f"unavailable ({type(exc).__name__})"
    try:
        v["postgresql"] = pg_server_version()
    except Exception as exc:
        v["postgresql"] = f"unavailable ({type(exc).__name__})"
    v["redis"] = redis_server_version()
    try:
        import sqlite3

        v["sqlite"] = sqlite3.sqlite_version
    except ImportError:
        pass
    return v


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    if a.output is not None:
        out_dir: Path = a.output
    elif a.quick:
        out_dir = Path(tempfile.mkdtemp(prefix="treadle-bench-quick-"))
    else:
        out_dir = RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = Recorder()
    doc: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": _versions(),
        "config": {
            "jobs": a.jobs,
            "enqueue_single_jobs": a.enqueue_single_jobs,
            "enqueue_batch_jobs": a.enqueue_batch_jobs,
            "batch_size": a.batch_size,
            "latency_jobs": a.latency_jobs,
            "latency_interval_s": a.latency_interval,
            "worker_processes": a.workers,
            "concurrency_per_process": a.concurrency,
            "repeats": a.repeats,
            "claim_depths": a.depths,
            "claim_samples": a.claim_samples,
            "peer_claim_samples": min(a.claim_samples, a.peer_claim_samples),
            "backends": a.backends,
            "peers": a.peers,
            "quick": a.quick,
            "analyze_before_drain": a.analyze_before_drain,
            "tag": a.tag,
            "tenants": a.tenants,
        },
    }
    log(f"results -> {out_dir}")
    with tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp_s:
        tmp = Path(tmp_s)
        day = started.strftime("%Y-%m-%d")
        suffix = f"-{a.tag}" if a.tag else ""
        json_path = out_dir / f"core-{day}{suffix}.json"
        md_path = out_dir / f"core{suffix}.md"

        def write(final: bool) -> str:
            doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            doc["complete"] = final
            doc["systems"] = rec.systems
            doc["errors"] = rec.errors
            json_path.write_text(dump_json(_clean(doc)) + "\n")
            md = render_markdown(_clean(doc), json_name=json_path.name)
            md_path.write_text(md)
            return md

        run_all(a, rec, tmp, out_dir, doc["versions"], checkpoint=lambda: write(False))
        doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    md = write(True)
    print(md)
    log(f"wrote {json_path} and {md_path}")
    return 1 if rec.errors else 0


def _clean(o: Any) -> Any:
    """JSON-safe: NaN -> None."""
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_clean(v) for v in o]
    return o


if __name__ == "__main__":
    raise SystemExit(main())
