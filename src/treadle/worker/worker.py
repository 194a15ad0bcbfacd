"""The pull cycle: claim under a lease, run, report; heartbeat; shut down gracefully.

Threads, and why:
- the caller's thread claims jobs whenever there is room (one claim per batch);
- ``concurrency`` executor threads run sync tasks; one asyncio loop runs async ones;
- a flusher writes outcomes in batches (one transaction per batch), retrying
  through database outages so nothing is lost;
- a maintenance thread heartbeats leases, enforces hard timeouts and reaps.

Every one of them is supervised (``worker/supervise.py``): an unexpected exception is
logged, the job in hand is failed with a classified error, and the thread goes on.

The parts are one module per concept: ``worker/claiming.py`` (claim loop, held-ahead
queue, suspects), ``worker/slots.py`` (executor slots), ``worker/flusher.py`` (outcome
batches) and ``worker/maintenance.py`` (heartbeat, hard timeouts, reaping, services),
over the shared state in ``worker/state.py``. This module puts them together and owns
the lifecycle: start, stop, graceful shutdown.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Literal

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import StoreUnavailable
from treadle.core.job import JobKind
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.executors.base import Executor
from treadle.logs import get_logger
from treadle.observe import NULL_OBSERVER, Observer
from treadle.store import Store
from treadle.streams.buffer import StreamBuffer
from treadle.streams.repo import StreamRepo
from treadle.tracing import NULL_TRACING, Tracing
from treadle.worker.claiming import Claiming
from treadle.worker.config import Service, WorkerConfig
from treadle.worker.flusher import _STREAMS, Flusher
from treadle.worker.maintenance import Maintenance
from treadle.worker.pruner import Pruner
from treadle.worker.reaper import Reaper
from treadle.worker.scheduler import Scheduler
from treadle.worker.state import FinishListener, _Running
from treadle.worker.supervise import supervised

log = get_logger("treadle.worker")


class Worker(Claiming, Maintenance, Flusher):
    def __init__(
        self,
        store: Store,
        executors: dict[JobKind, Executor],
        config: WorkerConfig | None = None,
        *,
        on_finished: Sequence[FinishListener] = (),
        clock: Clock = SYSTEM_CLOCK,
        observer: Observer = NULL_OBSERVER,
        scheduler: Scheduler | None = None,
        services: Sequence[Service] = (),
        tracing: Tracing = NULL_TRACING,
    ) -> None:
        self.tracing = tracing  # spans for claims and runs (ADR 0021)
        self.scheduler = scheduler
        self.services = list(services)
        self.clock = clock
        self.observer = observer
        self.store = store
        self.executors = executors
        # Claim only jobs this worker can run (ADR 0008): a job of another kind waits for a
        # worker that has its executor instead of failing here.
        self.kinds = tuple(sorted(k.value for k in executors))
        self.config = config or WorkerConfig()
        self.id = self.config.name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_finished = list(on_finished)
        self.reaper = Reaper(store, interval=self.config.reap_interval)
        self.pruner = Pruner(store, interval=self.config.prune_interval)
        cfg = self.config
        self.adaptive = cfg.prefetch is None
        self.prefetch = cfg.concurrency if cfg.prefetch is None else cfg.prefetch
        self._prefetch_base = self.prefetch
        self._prefetch_max = min(16 * cfg.concurrency, 10_000) if self.adaptive else self.prefetch
        # Every attempt this worker holds a lease for: begun ones and those claimed ahead.
        self._running: dict[int, _Running] = {}
        self._ahead: collections.deque[_Running] = collections.deque()  # claimed, not begun
        self._executing = 0  # begun and not finalized: at most ``concurrency``
        # Isolation after a crash (ADR 0024): while this worker runs a suspect it claims
        # nothing else, so if the process dies again the crash is charged to that job only.
        self._alone = False
        # Outcomes handed to the flusher and not yet written: their jobs are still
        # ``running`` under this worker in the store, so a crash now would be charged to
        # them too. A suspect waits for an empty worker *and* none of these.
        self._unwritten = 0
        self._look_for_suspects = True  # something changed since the last look found none
        # Set by the claim loop when it is woken or claims: the maintenance loop then
        # probes for running jobs (and dead owners) at once instead of at its idle pace.
        self._activity = False
        self._next_suspect_look = 0.0  # monotonic; the safety net for a missed wake-up
        self._dispatching = threading.local()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._tasks: queue.SimpleQueue[_Running | None] = queue.SimpleQueue()
        self._outcomes: queue.SimpleQueue[tuple[_Running, Outcome] | Literal["streams"] | None]
        self._outcomes = queue.SimpleQueue()
        # Live stream items ride with the flusher's writes (docs/streams.md, ADR 0011).
        self.streams = StreamBuffer(StreamRepo(store), lambda: self._outcomes.put(_STREAMS),
                                    clock)
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self.processed = 0

    # -- lifecycle -------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; in-flight jobs get ``shutdown_grace`` seconds to finish."""
        self._stopping.set()
        self.store.interrupt()

    def run(self) -> None:
        log.info("worker starting", worker=self.id, queues=self.config.queues,
                 kinds=self.kinds, concurrency=self.config.concurrency)
        self._register()
        self._start_threads()
        try:
            self._claim_loop()
        finally:
            self._shutdown()
            self._stopped.set()
            with contextlib.suppress(Exception):  # nothing to undo if it never registered
                self.store.unregister_worker(self.id)
            log.info("worker stopped", worker=self.id, processed=self.processed)

    def _register(self) -> None:
        """Make this worker's death noticeable before it claims anything (ADR 0018)."""
        try:
            if not self.store.register_worker(self.id):
                log.warning("worker liveness unknown; a crash is noticed by lease expiry",
                            worker=self.id)
        except StoreUnavailable as exc:
            log.warning("could not register the worker; a crash is noticed by lease expiry",
                        worker=self.id, error=str(exc))

    def _start_threads(self) -> None:
        for _ in range(self.config.concurrency):
            self._spawn_executor()
        for body, name in ((self._flush_loop, "flusher"), (self._maintenance_loop, "maint")):
            target = supervised(name, body, pause=self._stopped)
            t = threading.Thread(target=target, name=f"treadle-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    # -- shutdown --------------------------------------------------------------

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.config.shutdown_grace
        # No more hand-offs (ADR 0034); those made until now are held like claimed-ahead
        # jobs and released with them just below.
        try:
            self._accept(self.store.unpark(self.id))
        except StoreUnavailable as exc:  # its backend is gone too: nothing more is handed
            log.warning("could not unpark the worker", worker=self.id, error=str(exc))
        # Claimed ahead and never begun: back to the queue at once (a release does not
        # use up an attempt), so other workers run them during our grace period.
        with self._room:
            ahead = [e for e in self._running.values() if not e.begun]
        for e in ahead:
            self._hard_stop(e, Outcome(e.job.id, e.job.lease_token, OutcomeKind.RELEASED,
                                       self.id))
        with self._room:
            while self._running and time.monotonic() < deadline:
                self._room.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            left = list(self._running.values())
        for e in left:
            log.info("releasing lease at shutdown", job_id=e.job.id, worker=self.id)
            self._hard_stop(e, Outcome(e.job.id, e.job.lease_token, OutcomeKind.RELEASED,
                                       self.id))
        for _ in range(self.config.concurrency + len(left)):
            self._tasks.put(None)
        self._outcomes.put(None)
        self._stopped.set()
        # Join flusher and maintenance so nothing touches the store after run() returns.
        for t in self._threads:
            t.join()
        self._close_loop()



__all__ = ["FinishListener", "Service", "Worker", "WorkerConfig"]
