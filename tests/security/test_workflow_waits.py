"""Hostile waits in workflows (ADR 0006, ADR 0009), both stores.

Before: ``ctx.sleep(nan)`` or ``ctx.wait_event(key, timeout=inf)`` raised the clock's
ValueError/OverflowError, classified ``transient``: the workflow was retried until its
attempts ran out for an input that can never work. ``wait_event`` with a key that
``send_event`` refuses (a lone surrogate: the store raised mid-step; NUL, 1 MB: stored)
waited for an event no one could ever send. Now each fails its job at once as
``invalid_input`` and the worker carries on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from treadle import JobStatus, Treadle
from treadle.core.errors import ErrorClass
from treadle.testing import run_worker
from treadle.workflows import WorkflowContext

WAITS: dict[str, Callable[[WorkflowContext], Any]] = {
    "sleep_nan": lambda ctx: ctx.sleep(math.nan),
    "sleep_inf": lambda ctx: ctx.sleep(math.inf),
    "sleep_huge": lambda ctx: ctx.sleep(1e300),
    "sleep_text": lambda ctx: ctx.sleep("5"),  # type: ignore[arg-type]
    "key_surrogate": lambda ctx: ctx.wait_event("\ud800", timeout=1),
    "key_nul": lambda ctx: ctx.wait_event("a\x00b", timeout=1),
    "key_huge": lambda ctx: ctx.wait_event("k" * (1 << 20), timeout=1),
    "timeout_nan": lambda ctx: ctx.wait_event("k", timeout=math.nan),
    "timeout_inf": lambda ctx: ctx.wait_event("k", timeout=math.inf),
    "timeout_text": lambda ctx: ctx.wait_event("k", timeout="5"),  # type: ignore[arg-type]
    "map_no_payloads": lambda ctx: ctx.map("m", "give", 5),  # type: ignore[arg-type]
}


def test_waits_that_cannot_be_a_wake_time_fail_once_as_invalid_input(db_url: str) -> None:
    with Treadle(db_url) as app:
        @app.task(name="give", retries=0)
        def give(value: Any = None) -> Any:
            return value

        for name, body in WAITS.items():
            app.workflow(name=name, retries=3)(lambda ctx, body=body: body(ctx))

        @app.workflow(name="fine", retries=0)
        def fine(ctx: WorkflowContext) -> Any:
            ctx.sleep(-math.inf)  # no wait at all
            return ctx.wait_event("k", timeout=-1)

        with run_worker(app, concurrency=4):
            ids = {name: app.defer(name).id for name in WAITS}
            app.store.wait_for_finish(list(ids.values()), 30)
            ok = app.defer("fine").wait(20)
            assert ok.status is JobStatus.SUCCEEDED and ok.result is None
            assert app.defer("give", {"value": 7}).wait(20).result == 7
        for name, job_id in ids.items():
            job = app.get_job(job_id)
            assert job.status is JobStatus.FAILED, (name, job)
            assert job.error is not None, name
            assert job.error.error_class is ErrorClass.INVALID_INPUT, (name, job.error)
            assert job.attempt == 1, (name, job.attempt)  # not retried

