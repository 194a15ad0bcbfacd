"""Huey app of the hand-off benchmark (runs in bench/.venvs/huey): Redis or SQLite.

``BENCH_HUEY_BACKEND`` = ``redis`` (database ``BENCH_HUEY_REDIS_DB``, default 12) or
``sqlite`` (file ``BENCH_HUEY_SQLITE``). Huey's defaults otherwise.
"""

from __future__ import annotations

import os

from append_task import append_line
from huey import RedisHuey, SqliteHuey

if os.environ.get("BENCH_HUEY_BACKEND", "redis") == "redis":
    huey = RedisHuey(
        "treadle-bench",
        host=os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
        db=int(os.environ.get("BENCH_HUEY_REDIS_DB", "12")),
    )
else:
    huey = SqliteHuey("treadle-bench", filename=os.environ["BENCH_HUEY_SQLITE"])


@huey.task()
def append(path: str, i: int, enqueued: float) -> None:
    append_line(path, i, enqueued)
