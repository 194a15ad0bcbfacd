"""Markdown report of the workflow benchmark (``bench/results/workflows.md``)."""

from __future__ import annotations

from typing import Any

HOW = """\
## How each side was measured

Same machine, same PostgreSQL server and databases created fresh per measurement (dropped
afterwards), same SQLite library, files in the same temp directory; same number of
processes and of workflows in flight per process; no-op steps that return their index.

- **Treadle** (`bench/workflow_treadle.py`): `treadle worker` processes
  (`bench.apps.workflow_app:app`) run jobs of kind `workflow`; `bench_wf(ctx, n)` calls
  `ctx.step(f"s{i}", noop_step, i)` n times. Per step (a short one, as here) Treadle
  commits one write transaction before the workflow goes on: one statement that checks
  the job's lease (fencing token, `FOR SHARE` on PostgreSQL), upserts the step's row with
  its result and start/finish times, and appends `step_started`/`step_completed` to the
  job's event log (a step running over 0.5 s gets its start written at once, on its
  own). Replays read the step rows once per attempt. The jobs are enqueued while the
  queue is paused, then the queue is opened with every worker running and warmed up
  (3 warm-up workflows per process). Window: first `started_at` to last `finished_at`
  of the job rows; duration of a workflow: its `finished_at - started_at` (claim to
  completion, so it includes the job's own claim and completion writes).
- **DBOS Transact** (`bench/peers/dbos_bench.py`, own venv, pinned): processes call
  `@DBOS.workflow` `bench_wf(n)` directly — DBOS's in-process path, no queue, which is
  the lighter path for DBOS — from C threads each, after `DBOS.launch()` and 3 warm-up
  workflows per process, all released by one start signal. Per workflow DBOS writes its
  `workflow_status` row (start, completion); per `@DBOS.step` it runs one transaction
  that reads the workflow's status and any recorded output of the step
  (`check_operation_execution`) and one that inserts the step's output into
  `operation_outputs` (`record_operation_result`), committed before the workflow goes
  on. These are SQLAlchemy Core statements: 4 statements in 2 transactions per step
  (on SQLite both transactions are `BEGIN IMMEDIATE`, so the read one takes the write
  lock too). Window: start signal to the last workflow's return (DBOS's own timestamps
  have 1 s resolution on SQLite); duration: `perf_counter` around each workflow call
  (includes its start and completion writes).
- **Durability**: PostgreSQL as the server is configured for both (neither sets
  `synchronous_commit`); SQLite in WAL mode with `synchronous=FULL` for both (Treadle's
  default; DBOS leaves SQLite's defaults, i.e. the rollback journal with FULL — the file
  is switched to WAL before DBOS opens it unless `--dbos-sqlite-journal default`).
- **Per-step overhead**, latency: (median duration of n-step workflows - median of 0-step
  workflows) / n, per repeat, then the median over repeats: the start/finish cost of a
  workflow cancels out. Capacity: (1/wf_per_s(n) - 1/wf_per_s(0)) / n: machine time one
  more step costs at that configuration. Target (ADR 0009): Treadle's per-step overhead
  at most DBOS's on both databases.
- **Per-step CPU**: (CPU seconds per workflow with n steps - with 0 steps) / n, of the
  client-side processes only (user + system time of all their threads: the Treadle
  workers from `/proc/<pid>/stat` while the measured workflows ran, the DBOS processes'
  `time.process_time()` from the start signal to their last workflow). Less sensitive to
  the machine's other load than wall-clock figures; on PostgreSQL it leaves out the
  server's own CPU, on SQLite there is no server.
- Configurations `PxC`: P processes, C workflows in flight per process (Treadle worker
  `--concurrency C`, DBOS C threads). Repeats are interleaved (repeat, backend,
  configuration, step count, system) so load from elsewhere falls on both alike.
"""


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{float(v):.{digits}f}"


def _ratio(a: Any, b: Any) -> str:
    if a is None or b is None or float(b) == 0:
        return "—"
    return f"{float(a) / float(b):.2f}"


def render_markdown(doc: dict[str, Any], json_name: str) -> str:
    cfg = doc["config"]
    summary: dict[str, Any] = doc.get("summary", {})
    n = cfg["steps"]
    v = doc["versions"]
    m = doc["machine"]
    lines = [
        "# Durable workflows: overhead per checkpointed step, Treadle vs DBOS Transact",
        "",
        f"`python -m bench.workflow_bench` (ADR 0009; full data: `{json_name}`).",
        "",
        f"- Date: {doc['date']} → {doc.get('finished', '?')} (UTC), git `{v.get('git', '?')}`",
        f"- Load (`uptime`) at start: `{doc.get('uptime_at_start', '?')}`",
        f"- Load at end: `{doc.get('uptime_at_end', '?')}`",
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), {m.get('mem_total', '?')}; "
        "shared with other work while measuring (each run's load average is in the JSON)",
        f"- Versions: Python {v.get('python')}, Treadle {v.get('treadle')}, "
        f"DBOS pins {', '.join(v.get('dbos_pins', []))}, PostgreSQL {v.get('postgresql')}, "
        f"SQLite {v.get('sqlite')}",
        f"- Each measurement: {cfg['workflows_per_run']} workflows of {n} (and of 0) no-op "
        f"steps; medians of {cfg['repeats']} repeats; configurations {', '.join(cfg['configs'])}"
        " (processes x workflows in flight per process)",
        f"- SQLite journal for DBOS: `{cfg.get('dbos_sqlite_journal', 'wal')}` (Treadle: WAL)",
        "",
    ]
    if doc.get("note"):
        lines += [f"> {doc['note']}", ""]
    errors: dict[str, str] = doc.get("errors", {})
    if errors:
        lines += ["## Not measured / failed", ""]
        for key, err in errors.items():
            lines.append(f"- **{key}**: {err.splitlines()[0]}")
        lines.append("")
    for backend in cfg["backends"]:
        lines += [
            f"## {backend}",
            "",
            f"| system | PxC | workflows/s ({n} steps) | workflows/s (0 steps) | "
            "per-step overhead, latency (ms) | per-step overhead, capacity (ms) | "
            f"per-step CPU (ms) | median workflow ({n} / 0 steps, ms) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label in cfg["configs"]:
            for system in cfg["systems"]:
                s = summary.get(f"{backend}/{system}/{label}")
                if not s:
                    lines.append(f"| {system} | {label} | not measured | | | | | |")
                    continue
                lines.append(
                    f"| {system} | {label} | {_f(s['workflows_per_s'], 1)} | "
                    f"{_f(s['workflows_per_s_0_steps'], 1)} | {_f(s['per_step_latency_ms'])} | "
                    f"{_f(s['per_step_capacity_ms'])} | {_f(s.get('per_step_cpu_ms'))} | "
                    f"{_f(s['duration_median_ms'], 1)} / "
                    f"{_f(s['duration_median_ms_0_steps'], 1)} |"
                )
        lines.append("")
    lines += _ratios(cfg, summary)
    lines.append(HOW)
    return "\n".join(lines)


def _ratios(cfg: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    out = [
        "## Treadle ÷ DBOS",
        "",
        "Per-step overhead: lower is better, the target is ≤ 1.00. Workflows/s: higher is better.",
        "",
        "| database | PxC | per-step latency | per-step capacity | per-step CPU | workflows/s | "
        "target met (per-step latency and capacity ≤ DBOS) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for backend in cfg["backends"]:
        for label in cfg["configs"]:
            t = summary.get(f"{backend}/treadle/{label}")
            d = summary.get(f"{backend}/dbos/{label}")
            if not t or not d:
                out.append(f"| {backend} | {label} | — | — | — | — | not measured |")
                continue
            lat = _ratio(t["per_step_latency_ms"], d["per_step_latency_ms"])
            cap = _ratio(t["per_step_capacity_ms"], d["per_step_capacity_ms"])
            met = [
                x is not None and y is not None and x <= y
                for x, y in (
                    (t["per_step_latency_ms"], d["per_step_latency_ms"]),
                    (t["per_step_capacity_ms"], d["per_step_capacity_ms"]),
                )
            ]
            verdict = (
                "yes (both)"
                if all(met)
                else ("latency only" if met[0] else ("capacity only" if met[1] else "no"))
            )
            out.append(
                f"| {backend} | {label} | {lat} | {cap} | "
                f"{_ratio(t.get('per_step_cpu_ms'), d.get('per_step_cpu_ms'))} | "
                f"{_ratio(t['workflows_per_s'], d['workflows_per_s'])} | {verdict} |"
            )
    out.append("")
    return out
