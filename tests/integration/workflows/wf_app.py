"""A Treadle app with workflows, loaded by real `treadle worker` processes in the proof tests.

Steps and children record each run in files under ``$WF_MARKS`` (one line per start and
per end), so a test counts how often each ran across killed processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from treadle import Treadle
from treadle.workflows import WorkflowContext

app = Treadle(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle.db"))


def mark(line: str) -> None:
    marks = Path(os.environ["WF_MARKS"])
    with open(marks / f"{os.getpid()}.log", "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def slow_step(name: str, seconds: float) -> str:
    mark(f"start {name}")
    time.sleep(seconds)
    mark(f"end {name}")
    return name


@app.workflow(name="six_steps", retries=5, timeout=120)
def six_steps(ctx: WorkflowContext, seconds: float) -> list[str]:
    return [ctx.step(f"s{i}", slow_step, f"s{i}", seconds) for i in range(1, 7)]


@app.task(name="child", retries=5, timeout=60)
def child(i: int, seconds: float) -> int:
    mark(f"child {i}")
    time.sleep(seconds)
    return i * i


@app.workflow(name="fan", retries=5, timeout=120)
def fan(ctx: WorkflowContext, n: int, seconds: float) -> dict[str, Any]:
    ctx.step("prep", mark, "step prep")
    squares = ctx.map("squares", child, [{"i": i, "seconds": seconds} for i in range(n)])
    ctx.step("after", mark, "step after")
    return {"n": len(squares), "squares": squares}
