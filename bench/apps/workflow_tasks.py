"""The workflow benchmark's Treadle app factory: one workflow of ``n`` no-op steps."""

from __future__ import annotations

from typing import Any

from treadle import Treadle

WORKFLOW = "bench_wf"
WARMUP = "bench_warm"


def noop_step(i: int) -> int:
    """A no-op step: its result (``i``) is what gets checkpointed."""
    return i


def _body(ctx: Any, n: int) -> int:
    for i in range(n):
        ctx.step(f"s{i}", noop_step, i)
    return n


def build_app(url: str) -> Treadle:
    """A Treadle app with the benchmark workflow (and a same-shaped warm-up workflow)."""
    app = Treadle(url)
    if not hasattr(app, "workflow"):
        raise RuntimeError("this Treadle has no app.workflow (durable workflows, ADR 0009)")

    @app.workflow(name=WORKFLOW, queue="default", retries=0, timeout=600)
    def bench_wf(ctx: Any, n: int) -> int:
        return _body(ctx, n)

    @app.workflow(name=WARMUP, queue="default", retries=0, timeout=600)
    def bench_warm(ctx: Any, n: int) -> int:
        return _body(ctx, n)

    return app
