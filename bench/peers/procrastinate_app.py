"""procrastinate app used by the benchmark (runs inside bench/.venvs/procrastinate)."""

from __future__ import annotations

import os
import time
from typing import Any

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PG_URL"]),
)

_LAT_DIR = os.environ.get("BENCH_LATENCY_DIR")
_lat_file: Any = None


@app.task(name="noop", queue="default", pass_context=True)
async def noop(context: procrastinate.JobContext, **kwargs: Any) -> None:
    """No-op job. In latency mode it appends '<job id> <start time>' to a per-process file."""
    if _LAT_DIR:
        started = time.time()
        global _lat_file
        if _lat_file is None:
            _lat_file = open(os.path.join(_LAT_DIR, f"starts-{os.getpid()}.txt"), "a")  # noqa: SIM115
        assert context.job is not None
        _lat_file.write(f"{context.job.id} {started!r}\n")
        _lat_file.flush()
