"""A Treadle app for acceptance tests, loaded by real `treadle worker` processes."""

from __future__ import annotations

import os
import signal
import time

from treadle import JobContext, Treadle

app = Treadle(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle.db"))


@app.task(name="noop", retries=0)
def noop(**_: object) -> None:
    return None


@app.task(name="sleep", retries=3, timeout=120)
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="slow_first_attempt", retries=3, timeout=120, pass_context=True)
def slow_first_attempt(seconds: float, ctx: JobContext) -> str:
    """Hangs on its first attempt only, so a killed or frozen first attempt is visible."""
    if ctx.attempt == 1:
        time.sleep(seconds)
    return f"attempt{ctx.attempt}"


@app.task(name="streamy_first_attempt", retries=3, timeout=120, pass_context=True)
def streamy_first_attempt(items: int, ctx: JobContext) -> str:
    """Emits ``items`` stream items, then hangs on its first attempt only (ADR 0011)."""
    for i in range(items):
        ctx.emit("token", {"i": i})
    if ctx.attempt == 1:
        time.sleep(120)
    ctx.progress(1, 1)
    return f"attempt{ctx.attempt}"


@app.task(name="kill_own_worker", retries=10, timeout=60)
def kill_own_worker() -> None:
    """A poison job: SIGKILLs the worker process that runs it (ADR 0015)."""
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="steady", retries=3)
def steady(i: int) -> int:
    return i


@app.task(name="hang_first_attempt_no_retry", retries=0, timeout=120, pass_context=True)
def hang_first_attempt_no_retry(seconds: float, ctx: JobContext) -> str:
    """No retries: only a crash's refunded attempt lets it run twice (ADR 0024)."""
    if ctx.attempt == 1:
        time.sleep(seconds)
    return f"attempt{ctx.attempt}"


@app.task(name="gc_frozen", retries=0)
def gc_frozen() -> int:
    """How many objects the worker process froze at start-up (``gc.freeze``)."""
    import gc

    return gc.get_freeze_count()
