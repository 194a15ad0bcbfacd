"""What every part of a worker shares: the attempts it holds and the locks around them.

The worker is split by concept (claiming, slots, flusher, maintenance; one module each,
as in procrastinate/River); the parts are mixins of one ``Worker`` object because they
share this state under one lock and condition, and splitting the state itself would
change the locking. Its fields are declared here once, so each part type-checks alone;
``Worker.__init__`` (``worker/worker.py``) sets them.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from treadle.context import JobContext
from treadle.core.clock import Clock
from treadle.core.job import Job, JobKind
from treadle.core.outcome import Outcome
from treadle.executors.base import Executor, Runnable
from treadle.observe import Observer
from treadle.store import Store
from treadle.streams.buffer import StreamBuffer
from treadle.tracing import Tracing
from treadle.worker.attempt_log import AttemptLog
from treadle.worker.config import Service, WorkerConfig
from treadle.worker.pruner import Pruner
from treadle.worker.reaper import Reaper
from treadle.worker.scheduler import Scheduler

# Called after an outcome is recorded. "Listener", not "hook": a hook is an inbound
# webhook binding (docs/glossary.md).
FinishListener = Callable[[Job, Outcome], None]


class _HardStop(BaseException):
    """Raised inside a sync task's thread when its lease is gone (timeout/cancel/release).

    A BaseException so that a task's ``except Exception`` does not swallow it.
    """


@dataclass
class _Running:
    job: Job
    ctx: JobContext
    runnable: Runnable
    logs: AttemptLog = field(default_factory=AttemptLog)
    thread_id: int | None = None
    future: Any = None  # concurrent.futures.Future for async tasks
    finalized: bool = False
    started: float = field(default_factory=time.perf_counter)
    begun: bool = False  # False while claimed ahead, waiting for a slot (ADR 0017)


class WorkerState:
    """The fields the worker's parts share (set in ``Worker.__init__``)."""

    tracing: Tracing
    scheduler: Scheduler | None
    services: list[Service]
    clock: Clock
    observer: Observer
    store: Store
    executors: dict[JobKind, Executor]
    kinds: tuple[str, ...]
    config: WorkerConfig
    id: str
    on_finished: list[FinishListener]
    reaper: Reaper
    pruner: Pruner
    adaptive: bool
    prefetch: int
    _prefetch_base: int
    _prefetch_max: int
    _running: dict[int, _Running]
    _ahead: collections.deque[_Running]
    _executing: int
    _alone: bool
    _unwritten: int
    _look_for_suspects: bool
    _activity: bool
    _next_suspect_look: float
    _dispatching: threading.local
    _lock: threading.Lock
    _room: threading.Condition
    _stopping: threading.Event
    _stopped: threading.Event
    _tasks: queue.SimpleQueue[_Running | None]
    _outcomes: queue.SimpleQueue[tuple[_Running, Outcome] | Literal["streams"] | None]
    streams: StreamBuffer
    _threads: list[threading.Thread]
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: threading.Thread | None
    processed: int
