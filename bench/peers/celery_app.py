"""Celery app used by the benchmark (runs inside bench/.venvs/celery).

Broker: Redis on 127.0.0.1:6379; results in another Redis database so the drain and latency
measurements can read start (task return value) and completion (``date_done``) back.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
_PORT = os.environ.get("BENCH_REDIS_PORT", "6379")
BROKER_DB = int(os.environ.get("BENCH_CELERY_BROKER_DB", "13"))
BACKEND_DB = int(os.environ.get("BENCH_CELERY_BACKEND_DB", "14"))

app = Celery(
    "treadle_bench",
    broker=f"redis://{_HOST}:{_PORT}/{BROKER_DB}",
    backend=f"redis://{_HOST}:{_PORT}/{BACKEND_DB}",
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue="default",
    result_expires=None,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)


@app.task(name="noop")
def noop(**kwargs: Any) -> float:
    """No-op job; returns its start time (time.time()) so the harness can read it back."""
    return time.time()
