"""Agent orchestration overhead per model call and per tool call (ADR 0012).

Run from the repo root: .venv/bin/python -m bench.agents_bench [--quick] [--backends ...]
Writes bench/results/agents.json and bench/results/agents.md.

Both sides call the same loopback stub (it answers at once) through the same official SDK
(``openai``, Chat Completions) with the same adapter and the same trivial tool:

- **plain**: a Python loop (call the model, run the tools it asks for, repeat);
- **treadle**: the same agent as a job of kind ``agent`` on an in-process worker, every
  model call and tool call a checkpointed step.

A run's time is measured where its code runs (plain: the loop; treadle: the job's
``started_at`` to ``finished_at``, so queueing and claim latency are excluded and
reported apart). Three shapes of run (turns x tools per turn) give three equations
``time = a*model_calls + b*tool_calls + c``; solved per side, ``a`` and ``b`` are the
cost of one model call and one tool call, and Treadle's overhead is the difference.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import fresh_pg_database, machine_info, pg_server_version
from treadle import JobStatus, Treadle
from treadle.agents import tool
from treadle.agents.adapters.openai_chat import OpenAIAdapter
from treadle.agents.messages import ModelRequest
from treadle.agents.stub import StubLLM
from treadle.testing import migrated, run_worker, sqlite_url

RESULTS = Path(__file__).parent / "results"
SHAPES = ((10, 1), (10, 3), (20, 1))  # (model calls, tool calls per tool-using turn)
TARGET_MS = 5.0


@tool
def noop(n: int) -> dict[str, int]:
    """Return n."""
    return {"n": n}


def push_run(stub: StubLLM, turns: int, tools: int) -> None:
    for t in range(turns - 1):
        stub.push({"tool_calls": [{"name": "noop", "arguments": {"n": t * 10 + i}}
                                  for i in range(tools)],
                   "usage": {"input_tokens": 50, "output_tokens": 5}})
    stub.push({"content": "done", "usage": {"input_tokens": 50, "output_tokens": 5}})


def plain_run(adapter: OpenAIAdapter, turns: int, tools: int) -> tuple[float, float]:
    """The baseline: the same calls in a plain loop; returns (seconds, seconds inside the
    model and tool calls), timed as Treadle times them (around the call only)."""
    t0 = time.perf_counter()
    inside = 0.0
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for turn in range(turns + 1):
        c0 = time.perf_counter()
        res = adapter.complete(ModelRequest("", messages, [noop.spec], turn))
        inside += time.perf_counter() - c0
        messages.append(res.message())
        if not res.tool_calls:
            break
        for call in res.tool_calls:
            c0 = time.perf_counter()
            out = noop.fn(**noop.parse(call.arguments))
            inside += time.perf_counter() - c0
            messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name,
                             "content": json.dumps(out), "is_error": False})
    return time.perf_counter() - t0, inside


def solve(points: dict[tuple[int, int], float]) -> dict[str, float]:
    """a (per model call), b (per tool call), c (per run) from the three shapes, in ms."""
    (m1, k1), (m2, k2), (m3, k3) = SHAPES
    t1, t2, t3 = (points[s] * 1000 for s in SHAPES)
    n1, n2, n3 = (m1 - 1) * k1, (m2 - 1) * k2, (m3 - 1) * k3
    b = (t2 - t1) / (n2 - n1)
    a = (t3 - t1 - b * (n3 - n1)) / (m3 - m1)
    c = t1 - a * m1 - b * n1
    return {"per_model_call_ms": a, "per_tool_call_ms": b, "per_run_ms": c}


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="treadle-agents-bench-") as d:
            yield migrated(sqlite_url(d))
    else:
        with fresh_pg_database("treadle_agents_bench") as url:
            yield migrated(url)


def bench_backend(backend: str, stub: StubLLM, reps: int) -> dict[str, Any]:
    adapter = OpenAIAdapter("gpt-4.1-mini", base_url=stub.openai_url, api_key="stub")
    plain: dict[tuple[int, int], list[float]] = {s: [] for s in SHAPES}
    runs: dict[tuple[int, int], list[float]] = {s: [] for s in SHAPES}
    # Orchestration: a run's time outside the model and tool calls (the network to the
    # stub, the SDK and the machine's load are the noise; this is what Treadle adds).
    plain_orch: dict[tuple[int, int], list[float]] = {s: [] for s in SHAPES}
    orch: dict[tuple[int, int], list[float]] = {s: [] for s in SHAPES}
    paired: list[float] = []
    latency: list[float] = []
    with database(backend) as url:
        app = Treadle(url)
        agent = app.agent(name="bench", model=adapter, tools=[noop], max_iterations=100,
                          max_tool_calls=1000)
        with run_worker(app, concurrency=1, poll_interval=0.05):
            for _ in range(2):  # warm up both sides (SDK client, connections, caches)
                push_run(stub, 3, 1)
                plain_run(adapter, 3, 1)
                push_run(stub, 3, 1)
                agent.defer(input="warm").wait(30)
            for _ in range(reps):
                for shape in SHAPES:  # interleaved: drift hits both sides alike
                    push_run(stub, *shape)
                    total, inside = plain_run(adapter, *shape)
                    plain[shape].append(total)
                    plain_orch[shape].append(total - inside)
                    push_run(stub, *shape)
                    t0 = time.perf_counter()
                    job = agent.defer(input="go").wait(120)
                    wall = time.perf_counter() - t0
                    assert job.status is JobStatus.SUCCEEDED, job.error
                    assert job.started_at is not None and job.finished_at is not None
                    ran = (job.finished_at - job.started_at).total_seconds()
                    runs[shape].append(ran)
                    rep = job.result["report"]
                    orch[shape].append(ran - (rep["model_ms"] + rep["tool_ms"]) / 1000)
                    calls = shape[0] + (shape[0] - 1) * shape[1]
                    paired.append((orch[shape][-1] - plain_orch[shape][-1]) * 1000 / calls)
                    latency.append((wall - ran) * 1000)
        app.close()
    p = solve({s: statistics.median(v) for s, v in plain_orch.items()})
    t = solve({s: statistics.median(v) for s, v in orch.items()})
    steps = {f"{m}x{k}": {"plain_ms": round(statistics.median(plain[(m, k)]) * 1000, 2),
                          "treadle_ms": round(statistics.median(runs[(m, k)]) * 1000, 2),
                          "model_calls": m, "tool_calls": (m - 1) * k}
             for m, k in SHAPES}
    over = {k: round(t[k] - p[k], 3) for k in t}
    # The headline: per run, (treadle - plain) orchestration time / calls, paired (the
    # same shape, back to back), median over every pair.
    over["per_step_ms"] = round(statistics.median(paired), 3)
    over["per_step_p90_ms"] = round(sorted(paired)[int(0.9 * (len(paired) - 1))], 3)
    over["per_step_total_ms"] = round(statistics.median(
        [(statistics.median(runs[(m, k)]) - statistics.median(plain[(m, k)])) * 1000
         / (m + (m - 1) * k) for m, k in SHAPES]), 3)
    return {"backend": backend, "reps": reps, "shapes": steps,
            "plain": {k: round(v, 3) for k, v in p.items()},
            "treadle": {k: round(v, 3) for k, v in t.items()},
            "overhead": over,
            "submit_to_start_ms_median": round(statistics.median(latency), 2),
            "meets_target": over["per_step_ms"] <= TARGET_MS}


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# Agent orchestration overhead (ADR 0012)", "",
        f"{results['date']} · {machine.get('cpu', '')} · "
        f"{machine.get('nproc', '')} cores · Python {machine.get('python', '')}",
        "", "Same stub (loopback, answers at once), same `openai` SDK and adapter, same tool. "
        "Per-call costs solved from three run shapes (turns x tools per turn); "
        f"target: Treadle's overhead <= {TARGET_MS:.0f} ms per step on SQLite. "
        "Orchestration = a run's time outside its model and tool calls (each side timed "
        "around the calls the same way), so the stub's network time and the SDK are "
        "excluded; overhead per step = median over back-to-back pairs of (treadle - plain) "
        "orchestration / calls. The per-call split solves three shapes (noisier); 'end to "
        "end' compares whole run times (includes network noise). "
        f"Load average at start: {results['machine'].get('loadavg_at_start')} "
        "(the machine is shared: absolute times are inflated).", "",
        "| backend | **overhead per step** (p90) | per model call: plain | treadle | overhead "
        "| per tool call: plain | treadle | overhead | per run (fixed) | end to end per step "
        "| submit→start |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        p, t, o = r["plain"], r["treadle"], r["overhead"]
        lines.append(
            f"| {r['backend']} | **{o['per_step_ms']:.2f} ms** ({o['per_step_p90_ms']:.2f}) "
            f"| {p['per_model_call_ms']:.2f} ms | {t['per_model_call_ms']:.2f} ms "
            f"| {o['per_model_call_ms']:.2f} ms | {p['per_tool_call_ms']:.2f} ms "
            f"| {t['per_tool_call_ms']:.2f} ms | {o['per_tool_call_ms']:.2f} ms "
            f"| {o['per_run_ms']:.2f} ms | {o['per_step_total_ms']:.2f} ms "
            f"| {r['submit_to_start_ms_median']:.1f} ms |")
    lines += ["", "Median run times (ms):", "",
              "| backend | shape | model calls | tool calls | plain | treadle |",
              "|---|---|---|---|---|---|"]
    for r in results["runs"]:
        for name, s in r["shapes"].items():
            lines.append(f"| {r['backend']} | {name} | {s['model_calls']} | {s['tool_calls']} "
                         f"| {s['plain_ms']} | {s['treadle_ms']} |")
    if "postgres_server" in results:
        lines += ["", f"PostgreSQL: {results['postgres_server']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 repetitions, not written")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = ap.parse_args(argv)
    reps = 2 if args.quick else args.reps
    out: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine_info(),
                           "runs": []}
    with StubLLM() as stub:
        for backend in args.backends:
            print(f"agents bench: {backend} x{reps}", file=sys.stderr)
            out["runs"].append(bench_backend(backend, stub, reps))
    if "postgres" in args.backends:
        out["postgres_server"] = pg_server_version()
    text = markdown(out)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "agents.json").write_text(json.dumps(out, indent=2) + "\n")
        (RESULTS / "agents.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
