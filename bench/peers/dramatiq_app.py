"""Dramatiq app of the hand-off benchmark (runs in bench/.venvs/dramatiq): Redis broker,
database ``BENCH_DRAMATIQ_REDIS_DB`` (default 11). Dramatiq's defaults otherwise."""

from __future__ import annotations

import os

import dramatiq
from append_task import append_line
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(
    host=os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
    port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
    db=int(os.environ.get("BENCH_DRAMATIQ_REDIS_DB", "11")),
)
dramatiq.set_broker(broker)


@dramatiq.actor
def append(path: str, i: int, enqueued: float) -> None:
    append_line(path, i, enqueued)
