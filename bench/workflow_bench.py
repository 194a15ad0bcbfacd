"""Workflow benchmark (ADR 0009): overhead per checkpointed step, Treadle vs DBOS Transact.

Run from the repo root with the project's virtualenv::

    .venv/bin/python -m bench.workflow_bench             # full run -> bench/results/
    .venv/bin/python -m bench.workflow_bench --quick     # smoke run, written to a temp dir
    .venv/bin/python -m bench.workflow_bench --systems dbos --backends postgres

Each measurement runs ``--workflows`` workflows of ``n`` no-op steps (n = 0 and n =
``--steps``) on a fresh database with 4 processes, for each system, backend and process
configuration (``PxC``: P processes running C workflows at a time each). From those:

- workflows/s with n steps: workflows / (first start .. last completion);
- per-step overhead, latency: (median workflow duration with n steps - median with 0
  steps) / n, i.e. what one checkpointed step adds to a workflow's run time;
- per-step overhead, capacity: (1/wf_per_s(n) - 1/wf_per_s(0)) / n, i.e. how much of the
  whole machine's time one more step costs at that configuration.
- per-step CPU: (client-process CPU seconds per workflow with n steps - with 0) / n.

Treadle: ``treadle worker`` processes run ``@app.workflow`` jobs, each step a ``ctx.step``.
DBOS Transact (pinned, own venv): processes call a ``@DBOS.workflow`` directly (its
in-process path, no queue), each step a ``@DBOS.step``. Same PostgreSQL server, same
SQLite build; SQLite in WAL mode with synchronous=FULL for both (DBOS ships the rollback
journal; ``--dbos-sqlite-journal default`` measures that). Repeats are interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    dump_json,
    fresh_pg_database,
    fresh_sqlite_path,
    log,
    machine_info,
    pg_server_version,
)

ALL_BACKENDS = ("sqlite", "postgres")
ALL_SYSTEMS = ("treadle", "dbos")


def _csv(value: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
    bad = [v for v in items if allowed is not None and v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {allowed}")
    return items


def _configs(value: str) -> list[tuple[int, int]]:
    out = []
    for item in _csv(value):
        p, _, c = item.partition("x")
        out.append((int(p), int(c or 1)))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.workflow_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--backends", type=lambda v: _csv(v, ALL_BACKENDS), default=ALL_BACKENDS)
    p.add_argument("--systems", type=lambda v: _csv(v, ALL_SYSTEMS), default=ALL_SYSTEMS)
    p.add_argument(
        "--configs",
        type=_configs,
        default=_configs("4x1,4x10"),
        help="PxC: P processes, C workflows at a time in each (default 4x1,4x10)",
    )
    p.add_argument("--workflows", type=int, default=200, help="workflows per measurement")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dbos-sqlite-journal", choices=["wal", "default"], default="wal")
    p.add_argument("--quick", action="store_true", help="40 workflows, 1 repeat, temp dir")
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--tag", default="")
    p.add_argument("--note", default="", help="a line quoted at the top of the report")
    a = p.parse_args(argv)
    if a.quick:
        a.workflows, a.repeats = min(a.workflows, 40), 1
    return a


@contextlib.contextmanager
def _db(backend: str, system: str, tmp: Path) -> Iterator[str]:
    if backend == "postgres":
        with fresh_pg_database(prefix=f"wfbench_{system}") as url:
            yield url
    else:
        with fresh_sqlite_path(tmp) as path:
            yield f"sqlite:///{path}"


def _measure(a: argparse.Namespace, system: str, url: str, steps: int, cfg: tuple[int, int],
             logdir: Path) -> dict[str, Any]:  # fmt: skip
    procs, conc = cfg
    if system == "treadle":
        from bench.treadle_side import WorkerSpec
        from bench.workflow_treadle import run

        spec = WorkerSpec(processes=procs, concurrency=conc)
        return run(url, steps=steps, workflows=a.workflows, spec=spec, logdir=logdir)
    from bench.venvs import run_peer

    return run_peer(
        "dbos", "run", "--db", url, "--steps", str(steps), "--workflows", str(a.workflows),
        "--procs", str(procs), "--threads", str(conc),
        "--sqlite-journal", a.dbos_sqlite_journal,
    )  # fmt: skip


def _per_step(runs0: list[dict[str, Any]], runsn: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Per-step overheads, computed per repeat (pairs of 0-step and n-step runs), medians."""
    lat = [(rn["duration_median_ms"] - r0["duration_median_ms"]) / n
           for r0, rn in zip(runs0, runsn, strict=False)]  # fmt: skip
    cap = [(1000.0 / rn["workflows_per_s"] - 1000.0 / r0["workflows_per_s"]) / n
           for r0, rn in zip(runs0, runsn, strict=False)]  # fmt: skip
    cpu = [(rn["cpu_seconds"] / rn["workflows"] - r0["cpu_seconds"] / r0["workflows"]) * 1000 / n
           for r0, rn in zip(runs0, runsn, strict=False)
           if "cpu_seconds" in r0 and "cpu_seconds" in rn]  # fmt: skip
    med = statistics.median
    return {
        "per_step_cpu_ms": round(med(cpu), 3) if cpu else None,
        "per_step_cpu_ms_each": [round(x, 3) for x in cpu],
        "repeats": len(lat),
        "per_step_latency_ms": round(med(lat), 3) if lat else None,
        "per_step_latency_ms_each": [round(x, 3) for x in lat],
        "per_step_capacity_ms": round(med(cap), 3) if cap else None,
        "per_step_capacity_ms_each": [round(x, 3) for x in cap],
        "workflows_per_s": round(med([r["workflows_per_s"] for r in runsn]), 2) if runsn else None,
        "workflows_per_s_each": [r["workflows_per_s"] for r in runsn],
        "workflows_per_s_0_steps": (
            round(med([r["workflows_per_s"] for r in runs0]), 2) if runs0 else None
        ),
        "duration_median_ms": (
            round(med([r["duration_median_ms"] for r in runsn]), 3) if runsn else None
        ),
        "duration_median_ms_0_steps": (
            round(med([r["duration_median_ms"] for r in runs0]), 3) if runs0 else None
        ),
    }


def run_all(a: argparse.Namespace, doc: dict[str, Any], tmp: Path, checkpoint: Any) -> None:
    runs: dict[str, Any] = doc["runs"]
    errors: dict[str, str] = doc["errors"]
    if "dbos" in a.systems:
        from bench.venvs import ensure_venv

        try:
            ensure_venv("dbos")
        except Exception as exc:
            errors["dbos"] = f"{type(exc).__name__}: {exc}"
    if "treadle" in a.systems:
        from treadle import Treadle

        if not hasattr(Treadle, "workflow"):
            errors["treadle"] = (
                "not measured: this checkout's Treadle has no durable workflows "
                "(`app.workflow`, ADR 0009) yet"
            )
    for rep in range(a.repeats):
        for backend in a.backends:
            for procs, conc in a.configs:
                label = f"{procs}x{conc}"
                for steps in (0, a.steps):
                    for system in a.systems:
                        key = f"{backend}/{system}/{label}"
                        if key in errors or system in errors:
                            continue
                        log(f"[{rep + 1}/{a.repeats}] {key} steps={steps} ...")
                        load = [round(x, 2) for x in os.getloadavg()]
                        try:
                            with _db(backend, system, tmp) as url:
                                r = _measure(a, system, url, steps, (procs, conc), tmp)
                        except Exception as exc:
                            log(f"{key} FAILED: {exc!r}")
                            errors[key] = (
                                f"{type(exc).__name__}: {exc}\n" + (traceback.format_exc()[-2500:])
                            )
                            continue
                        r["loadavg_before"] = load
                        log(f"  -> {r['workflows_per_s']} wf/s, "
                            f"median {r['duration_median_ms']:.1f} ms")  # fmt: skip
                        runs.setdefault(key, {}).setdefault(str(steps), []).append(r)
                        checkpoint()
    summary: dict[str, Any] = {}
    for key, by_steps in runs.items():
        summary[key] = _per_step(by_steps.get("0", []), by_steps.get(str(a.steps), []), a.steps)
    doc["summary"] = summary


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


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
    import sqlite3

    v["sqlite"] = sqlite3.sqlite_version
    from bench.venvs import PEER_REQUIREMENTS

    v["dbos_pins"] = PEER_REQUIREMENTS["dbos"]
    with contextlib.suppress(Exception):
        v["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, timeout=5).stdout.strip()  # fmt: skip
    return v


def main(argv: list[str] | None = None) -> int:
    from bench.workflow_report import render_markdown

    a = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    if a.output is not None:
        out_dir: Path = a.output
    elif a.quick:
        out_dir = Path(tempfile.mkdtemp(prefix="treadle-wfbench-quick-"))
    else:
        out_dir = RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"-{a.tag}" if a.tag else ""
    json_path = out_dir / f"workflows-{started.strftime('%Y-%m-%d')}{suffix}.json"
    md_path = out_dir / f"workflows{suffix}.md"
    doc: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "uptime_at_start": _uptime(),
        "machine": machine_info(),
        "versions": _versions(),
        "config": {
            "backends": list(a.backends),
            "systems": list(a.systems),
            "configs": [f"{p}x{c}" for p, c in a.configs],
            "workflows_per_run": a.workflows,
            "steps": a.steps,
            "repeats": a.repeats,
            "dbos_sqlite_journal": a.dbos_sqlite_journal,
            "quick": a.quick,
        },
        "runs": {},
        "errors": {},
        "note": a.note,
    }

    def write(final: bool) -> None:
        doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        doc["complete"] = final
        json_path.write_text(dump_json(doc) + "\n")
        if final:
            md_path.write_text(render_markdown(doc, json_name=json_path.name))

    log(f"results -> {out_dir}")
    with tempfile.TemporaryDirectory(prefix="treadle-wfbench-") as tmp:
        run_all(a, doc, Path(tmp), checkpoint=lambda: write(False))
    doc["uptime_at_end"] = _uptime()
    write(True)
    print(md_path.read_text())
    log(f"wrote {json_path} and {md_path}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
