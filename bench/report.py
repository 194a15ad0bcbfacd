"""Render the results document as the markdown summary committed in bench/results/core.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]

TREADLE = ("treadle-sqlite", "treadle-postgres")
PEERS = ("procrastinate", "celery")


def _get(*path: str) -> Getter:
    def g(sys_res: dict[str, Any]) -> float | None:
        cur: Any = sys_res
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return float(cur) if isinstance(cur, int | float) else None

    return g


# (label, getter, higher is better, unit)
METRICS: list[tuple[str, Getter, bool, str]] = [
    ("enqueue, single (jobs/s)", _get("enqueue_single", "median_jobs_per_s"), True, ""),
    ("enqueue, batch (jobs/s)", _get("enqueue_batch", "median_jobs_per_s"), True, ""),
    ("drain, 4 processes (jobs/s)", _get("drain", "median_jobs_per_s"), True, ""),
    ("enqueue→start p50 (ms)", _get("latency", "p50_ms"), False, ""),
    ("enqueue→start p95 (ms)", _get("latency", "p95_ms"), False, ""),
    ("enqueue→start p99 (ms)", _get("latency", "p99_ms"), False, ""),
]


NOTES = [
    "- Drain = jobs / (last completion - first start), from each system's own record: Treadle "
    "job rows, procrastinate's `procrastinate_events`, Celery's Redis result backend (start = "
    "the task's `time.time()`, end = `date_done`). Repeats interleave the systems.",
    "- Durability differs: Treadle and procrastinate commit every claim/completion to "
    "PostgreSQL (`synchronous_commit=on`) or SQLite (WAL, `synchronous=FULL`); Celery acks "
    "early by default and its Redis here runs without AOF, so it is not a system of record.",
    "- Celery has no bulk-enqueue call; its batch figure is `group(...).apply_async()`, which "
    "publishes one message per job (hence slower than its single-call loop).",
    "- The drain's jobs are bulk-inserted into a fresh table just before workers start, so "
    "PostgreSQL has no planner statistics yet; procrastinate's `fetch_job` suffers from that "
    "(see its claim latency as enqueued vs after ANALYZE). `--analyze-before-drain` measures "
    "the drain after an ANALYZE (committed as `core-drain-analyzed.md` when run).",
    "- Claim latency depths are measured in interleaved rounds; each depth's queue shrinks by "
    "the claims taken (about 2 x samples + 5).",
    "- Latency and throughput on a shared 2-core machine are noisy: see the load averages "
    "stored with every run in the JSON.",
]


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def render_markdown(doc: dict[str, Any], json_name: str) -> str:
    systems: dict[str, dict[str, Any]] = doc.get("systems", {})
    cfg = doc.get("config", {})
    m = doc.get("machine", {})
    v = doc.get("versions", {})
    present = [s for s in (*TREADLE, *PEERS) if s in systems or s in doc.get("errors", {})]
    lines: list[str] = []
    lines.append("# Treadle core benchmark")
    lines.append("")
    lines.append(f"- date: {doc.get('date')} (finished {doc.get('finished')})")
    lines.append(
        f"- machine: {m.get('nproc')} CPUs ({m.get('cpu', '?')}), {m.get('mem_total', '?')}, "
        f"{m.get('platform')}; load average at start {m.get('loadavg_at_start')}, "
        f"at end {m.get('loadavg_at_end')} (shared machine: other work may have run)"
    )
    lines.append(
        f"- versions: treadle {v.get('treadle')}, Python {v.get('python')}, "
        f"PostgreSQL {v.get('postgresql')}, SQLite {v.get('sqlite')}, Redis {v.get('redis')}"
    )
    for peer in PEERS:
        if v.get(peer):
            pv = ", ".join(f"{k} {val}" for k, val in v[peer].items())
            lines.append(f"- {peer} venv (bench/.venvs/{peer}): {pv}")
    lines.append(
        f"- workload: no-op jobs; drain {cfg.get('jobs'):,} jobs x {cfg.get('repeats')} "
        f"repeats (median quoted), {cfg.get('worker_processes')} worker processes for every "
        f"system (Treadle and procrastinate: {cfg.get('concurrency_per_process')} concurrent "
        f"jobs per process; Celery: prefork pool of {cfg.get('worker_processes')}); enqueue "
        f"single {cfg.get('enqueue_single_jobs'):,} jobs, batch {cfg.get('enqueue_batch_jobs'):,} "
        f"jobs in calls of {cfg.get('batch_size'):,}; latency {cfg.get('latency_jobs')} jobs "
        f"{cfg.get('latency_interval_s')} s apart with idle workers"
        + (f"; drain and claim jobs spread round-robin over {cfg['tenants']} tenants "
           "(weighted tenant fairness in every claim, ADR 0010)"
           if (cfg.get("tenants") or 1) > 1 else "")
    )
    lines.append(f"- raw data: `{json_name}`" + (" (QUICK smoke run)" if cfg.get("quick") else ""))
    if cfg.get("analyze_before_drain"):
        lines.append(
            "- drain variant: ANALYZE run after the jobs were enqueued, before workers started"
        )
    if doc.get("complete") is False:
        lines.append(
            "- **partial: the run was still going (or was stopped) when this was written**"
        )
    lines.append("")

    lines.append("## Measured")
    lines.append("")
    lines.append("| metric | " + " | ".join(present) + " |")
    lines.append("|---|" + "---:|" * len(present))
    for label, getter, _, _ in METRICS:
        vals = [getter(systems.get(s, {})) for s in present]
        if all(v is None for v in vals):
            continue  # workload not part of this run
        lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |")
    lines.append("")

    pairs = [(t, p) for t in TREADLE if t in systems for p in PEERS if p in systems]
    if pairs:
        lines.append("## Treadle ÷ peer")
        lines.append("")
        lines.append(
            "Ratio = Treadle's figure divided by the peer's. Throughput: above 1x means Treadle "
            "is faster. Latency: below 1x means Treadle is faster."
        )
        lines.append("")
        lines.append("| metric | " + " | ".join(f"{t} ÷ {p}" for t, p in pairs) + " |")
        lines.append("|---|" + "---:|" * len(pairs))
        for label, getter, _, _ in METRICS:
            row = [_ratio(getter(systems[t]), getter(systems[p])) for t, p in pairs]
            if all(r == "—" for r in row):
                continue
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines.append("")

    claim_rows = [
        (t, systems[t]["claim"]) for t in (*TREADLE, *PEERS) if "claim" in systems.get(t, {})
    ]
    if claim_rows:
        lines.append(
            "## Claim latency (one single-job claim call: Treadle `store.claim(limit=1)`, "
            "procrastinate `JobManager.fetch_job`)"
        )
        lines.append("")
        lines.append(
            "| system | queued | fill time (s) | p50 ms | p95 ms | p99 ms | p50 after ANALYZE |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for t, c in claim_rows:
            for depth, d in c.get("depths", {}).items():
                ae, an = d.get("as_enqueued", {}), d.get("after_analyze", {})
                lines.append(
                    f"| {t} | {int(depth):,} | {_fmt(d.get('fill_seconds'))} | "
                    f"{_fmt(ae.get('p50_ms'))} | {_fmt(ae.get('p95_ms'))} | "
                    f"{_fmt(ae.get('p99_ms'))} | {_fmt(an.get('p50_ms'))} |"
                )
        lines.append("")

    lines.append("## Floors (ADR 0201)")
    lines.append("")
    lines.append(_floors(systems))
    lines.append("")
    lines.append("## How to read this")
    lines.append("")
    lines.extend(NOTES)
    errors = doc.get("errors") or {}
    if errors:
        lines.append("")
        lines.append("## Errors")
        lines.append("")
        for s, per in errors.items():
            for w, msg in per.items():
                first = msg.strip().splitlines()[0] if msg.strip() else ""
                lines.append(f"- {s} / {w}: {first[:300]}")
    lines.append("")
    return "\n".join(lines)


def _floors(systems: dict[str, dict[str, Any]]) -> str:
    out: list[str] = ["| floor | measured | met |", "|---|---|:---:|"]
    drain = _get("drain", "median_jobs_per_s")
    tpg = systems.get("treadle-postgres", {})
    for peer, need in (("procrastinate", 5.0), ("celery", 1.0)):
        a, b = drain(tpg), drain(systems.get(peer, {}))
        if a is not None and b is not None and b > 0:
            r = a / b
            ok = r >= need if need > 1 else r > need
            cmp = f"≥ {need:g}x" if need > 1 else "> 1x"
            out.append(f"| PostgreSQL drain {cmp} {peer} | {r:.2f}x | {'yes' if ok else 'NO'} |")
        else:
            out.append(f"| PostgreSQL drain vs {peer} | not measured in this run | — |")
    p50 = _get("latency", "p50_ms")
    for t in TREADLE:
        val = p50(systems.get(t, {}))
        if val is None:
            out.append(f"| {t} p50 enqueue→start < 10 ms | not measured | — |")
        else:
            out.append(
                f"| {t} p50 enqueue→start < 10 ms | {val:.2f} ms | {'yes' if val < 10 else 'NO'} |"
            )
    for t in TREADLE:
        c = systems.get(t, {}).get("claim", {})
        r = c.get("ratio_p50")
        if r is None:
            out.append(f"| {t} claim p50 at 1M ≤ 2x 1k | not measured | — |")
        else:
            depths = sorted(int(d) for d in c.get("depths", {}))
            ra = c.get("ratio_p50_after_analyze")
            extra = f" (after ANALYZE {ra:.2f}x)" if ra is not None else ""
            out.append(
                f"| {t} claim p50 at {depths[-1]:,} ≤ 2x at {depths[0]:,} | {r:.2f}x{extra} | "
                f"{'yes' if r <= 2 else 'NO'} |"
            )
    return "\n".join(out)
