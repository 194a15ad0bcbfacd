"""Per-tenth figures and the Markdown page of ``bench/backlog_bench.py``."""

from __future__ import annotations

import itertools
from typing import Any

from bench.common import percentile


def deciles(loaded: dict[str, Any], claims: list[list[str]], starts: list[Any],
            samples: list[dict[str, Any]],
            cpu_samples: list[tuple[float, float]] | None = None) -> list[dict[str, Any]]:
    first, span = loaded["first_id"], loaded["last_id"] - loaded["first_id"] + 1

    def decile_of(job_id: int) -> int:
        return int(min(9, max(0, (job_id - first) * 10 // span)))

    by: list[dict[str, Any]] = [{"decile": d + 1, "claim_ms": [], "claim_jobs": 0,
                                 "probe_ms": [], "probe_buffers": [], "indexes": set(),
                                 "dead": []} for d in range(10)]
    for _, n, secs, top in claims:
        b = by[decile_of(int(top))]
        b["claim_ms"].append(float(secs) * 1000)
        b["claim_jobs"] += int(n)
    # CPU between probe samples is charged to the decile the next job to claim was in.
    prev = None
    for s in samples:
        if s.get("next_id") is None:
            continue
        b = by[decile_of(int(s["next_id"]))]
        if "exec_ms" in s:
            b["probe_ms"].append(s["exec_ms"])
            b["probe_buffers"].append(s["buffers"])
            b["indexes"].update(s["indexes"])
        b["dead"].append(s["dead"])
        if prev is not None:
            b.setdefault("cpu_w", 0.0)
            b.setdefault("cpu_db", 0.0)
            b["cpu_w"] += s["worker_cpu"] - prev["worker_cpu"]
            # Backends that came and went are not counted: the workers' pools keep theirs.
            b["cpu_db"] += max(0.0, s["db_cpu"] - prev["db_cpu"])
            b.setdefault("cpu_jobs", 0)
            b["cpu_jobs"] += int(s["next_id"]) - int(prev["next_id"])
        prev = s
    if not samples:
        _charge_cpu(by, claims, cpu_samples or [], decile_of)
    out = []
    for b in by:
        d = b["decile"] - 1
        n_claims = len(b["claim_ms"])
        row: dict[str, Any] = {"decile": b["decile"], "claims": n_claims,
                               "jobs_per_claim": round(b["claim_jobs"] / max(1, n_claims), 1)}
        if b["claim_ms"]:
            row["claim_p50_ms"] = round(percentile(b["claim_ms"], 50), 2)
            row["claim_p99_ms"] = round(percentile(b["claim_ms"], 99), 2)
        st = next((x for x in starts if x[0] == d), None)
        if st and st[3] > st[2]:
            row["jobs_per_s"] = round(st[1] / (st[3] - st[2]), 1)
        if b["probe_ms"]:
            row["probe_p50_ms"] = round(percentile(b["probe_ms"], 50), 2)
            row["probe_buffers_p50"] = int(percentile(b["probe_buffers"], 50))
            row["probe_buffers_max"] = max(b["probe_buffers"])
            row["indexes"] = sorted(b["indexes"])
        if b["dead"]:
            row["dead_tuples_max"] = max(b["dead"])
        if b.get("cpu_jobs"):
            row["worker_cpu_ms_per_job"] = round(b["cpu_w"] / b["cpu_jobs"] * 1000, 3)
            row["db_cpu_ms_per_job"] = round(b["cpu_db"] / b["cpu_jobs"] * 1000, 3)
        out.append(row)
    return out


def render(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"# Backlog drain ({res['tag']})", "",
           f"{res['when']} · {m.get('cpu', '?')} · {m['nproc']} CPUs · Python {m['python']} · "
           f"load at start {m['loadavg_at_start']}, at end {res['loadavg_at_end']}", "",
           f"Command: `{res['command']}`", ""]
    for r in res["runs"]:
        out += [f"## {r['store']}: {r['jobs']:,} jobs, {r['workers']} workers x "
                f"--concurrency {r['concurrency']}, queues {r['queues'] or 'all'}", "",
                f"Claim statement `{r['claim_statement']}`; table analyzed after the load: "
                f"{r['analyzed_after_load']}; server autovacuum: "
                f"{r['load'].get('autovacuum', 'n/a')}.", "",
                f"Loaded in {r['load']['seconds']} s; drained in {r['drain_seconds']} s "
                f"({r['jobs_per_s']} jobs/s) at load {r['loadavg_during']['start']} → "
                f"{r['loadavg_during']['end']}; workers' CPU "
                f"{r['worker_cpu_s_per_1000_jobs']} s per 1,000 jobs. Jobs by final status: "
                + ", ".join(f"{k} {v:,}" for k, v in r["statuses"].items()) + ".", ""]
        probe = r["store"] == "postgres"
        head = ["tenth", "claims", "jobs/claim", "claim p50 ms", "claim p99 ms", "jobs/s"]
        if not probe:
            head += ["worker CPU ms/job (database included)"]
        if probe:
            head += ["probe stmt p50 ms", "probe buffers p50 (max)", "dead tuples max",
                     "worker CPU ms/job", "db CPU ms/job"]
        out += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for d in r["deciles"]:
            cells = [str(d["decile"]), str(d["claims"]), str(d["jobs_per_claim"]),
                     str(d.get("claim_p50_ms", "")), str(d.get("claim_p99_ms", "")),
                     str(d.get("jobs_per_s", ""))]
            if not probe:
                cells += [str(d.get("worker_cpu_ms_per_job", ""))]
            if probe:
                cells += [str(d.get("probe_p50_ms", "")),
                          f"{d.get('probe_buffers_p50', '')} ({d.get('probe_buffers_max', '')})",
                          str(d.get("dead_tuples_max", "")),
                          str(d.get("worker_cpu_ms_per_job", "")),
                          str(d.get("db_cpu_ms_per_job", ""))]
            out.append("| " + " | ".join(cells) + " |")
        idx = sorted({i for d in r["deciles"] for i in d.get("indexes", [])})
        if idx:
            out += ["", "Plan nodes of the probed claim statement over the drain: "
                    + ", ".join(f"`{i}`" for i in idx) + "."]
        for when in ("before", "after"):
            out += ["", f"### EXPLAIN {when} the drain", ""]
            for name, plan in r[f"explain_{when}"].items():
                out += [f"`{name}`:", "", "```", plan, "```", ""]
    return "\n".join(out) + "\n"


def _charge_cpu(by: list[dict[str, Any]], claims: list[list[str]],
                cpu: list[tuple[float, float]], decile_of: Any) -> None:
    """Without a probe (SQLite, where the database works inside the workers): the workers'
    CPU between two samples is charged to the tenth of the jobs claimed meanwhile (or of
    the last claim, when none was)."""
    timed = sorted((float(t), int(n), int(top)) for t, n, _, top in claims)
    i, last = 0, None
    for (t0, c0), (t1, c1) in itertools.pairwise(cpu):
        jobs, top = 0, last
        while i < len(timed) and timed[i][0] <= t1:
            if timed[i][0] > t0:
                jobs += timed[i][1]
            top = timed[i][2]
            i += 1
        if top is None:
            continue
        last = top
        b = by[decile_of(top)]
        b["cpu_w"] = b.get("cpu_w", 0.0) + (c1 - c0)
        b["cpu_db"] = 0.0
        b["cpu_jobs"] = b.get("cpu_jobs", 0) + jobs
