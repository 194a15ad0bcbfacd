"""The pull cycle: claim under a lease, run, report; heartbeat; shut down gracefully.

Threads, and why:
- the caller's thread claims jobs whenever there is room (one claim per batch);
- ``concurrency`` executor threads run sync tasks; one asyncio loop runs async ones;
- a flusher writes outcomes in batches (one transaction per batch), retrying
  through database outages so nothing is lost;
- a maintenance thread heartbeats leases, enforces hard timeouts and reaps.

Every one of them is supervised (``worker/supervise.py``): an unexpected exception is
logged, the job in hand is failed with a classified error, and the thread goes on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from treadle.context import JobContext
from treadle.core.budget import Deadline
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    ErrorInfo,
    Permanent,
    StoreUnavailable,
    Timeout,
)
from treadle.core.job import Job, JobKind
from treadle.core.lease import LeaseConfig
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.progress import ProgressState
from treadle.executors.base import Executor, Runnable
from treadle.logs import get_logger
from treadle.observe import NULL_OBSERVER, Observer
from treadle.store import Store
from treadle.streams.buffer import StreamBuffer
from treadle.streams.repo import StreamRepo
from treadle.tracing import NULL_TRACING, Tracing
from treadle.usage import UsageMeter
from treadle.worker.attempt_log import AttemptLog
from treadle.worker.outcome import outcome_for_crash, outcome_for_error, outcome_for_result
from treadle.worker.pruner import Pruner
from treadle.worker.reaper import DEAD_INTERVAL, PROBE_INTERVAL, Reaper
from treadle.worker.scheduler import Scheduler
from treadle.worker.supervise import describe, supervised
from treadle.worker.writing import store_batch, store_each

log = get_logger("treadle.worker")

# Called after an outcome is recorded. "Listener", not "hook": a hook is an inbound
# webhook binding (docs/glossary.md).
FinishListener = Callable[[Job, Outcome], None]
# How often an idle worker looks for suspects without a wake-up (ADR 0024): a safety net,
# as the reap that makes suspects wakes the waiting workers.
SUSPECT_LOOK_INTERVAL = 10.0
# After the claim loop saw a change, an idle worker probes for running jobs at once and
# again this much later (a peer's claim may commit a moment after the wake-up).
ACTIVITY_WINDOW = 0.5
# Put on the outcomes queue to wake the flusher for stream items (none are outcomes).
_STREAMS: Literal["streams"] = "streams"


class Service(Protocol):
    """Periodic maintenance a job kind brings (the workflow waker's sweep)."""

    interval: float

    def run_once(self) -> object: ...


@dataclass(frozen=True)
class WorkerConfig:
    queues: tuple[str, ...] | None = None  # None: every queue
    concurrency: int = 10
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    poll_interval: float = 2.0  # safety net only; wake-ups come from the store
    shutdown_grace: float = 30.0
    reap_interval: float = 5.0
    prune_interval: float = 60.0  # retention passes (ADR 0010)
    name: str | None = None
    burst: bool = False  # stop once no work is left (tests, one-shot runs)
    # Claim ahead (ADR 0017): jobs claimed beyond the free slots, held under lease and
    # heartbeat, started as slots free up, released at shutdown. None: adaptive, from
    # ``concurrency`` up to 16 x ``concurrency`` while a backlog drains faster than a claim
    # round trip refills it, back to ``concurrency`` once a claim comes back short.
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigurationError("concurrency must be between 1 and 10000")
        if self.prefetch is not None and not 0 <= self.prefetch <= 10_000:
            raise ConfigurationError("prefetch must be between 0 and 10000")
        if self.poll_interval <= 0 or self.shutdown_grace < 0 or self.reap_interval <= 0 \
                or self.prune_interval <= 0:
            raise ConfigurationError("intervals must be positive")
        if self.queues is not None and not self.queues:
            raise ConfigurationError("queues must name at least one queue (or be None for all)")
        if self.name is not None and not (self.name.isprintable() and 0 < len(self.name) <= 200):
            # The name is stored with every claim and heartbeat (ADR 0006).
            raise ConfigurationError("a worker name must be 1-200 printable characters")


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
    meter: UsageMeter | None = None  # what the attempt costs, from its start (ADR 0022)


class Worker:
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

    def _spawn_executor(self) -> None:
        target = supervised("executor", self._executor_loop, pause=self._stopped)
        t = threading.Thread(target=target, name="treadle-exec", daemon=True)
        t.start()

    # -- claiming --------------------------------------------------------------

    def _claim_loop(self) -> None:
        # Runs in the caller's thread: supervised here, not restarted by a wrapper, so
        # run() keeps its shape. A failure other than an outage is logged and retried.
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                if self._claim_until_stopped():
                    return
            except Exception as exc:
                log.error("claim loop failed; retrying", worker=self.id, error=describe(exc),
                          exc_info=exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _claim_until_stopped(self) -> bool:
        """Claim what fits, start it, wait for wake-ups; True once a burst run is done."""
        backoff = 0.05
        cfg = self.config
        while not self._stopping.is_set():
            with self._room:
                if self._alone:
                    if self._running or self._unwritten:  # its outcome is not stored yet
                        self._room.wait(cfg.poll_interval)
                        continue
                    self._alone = False
                room = cfg.concurrency + self.prefetch - len(self._running)
                # Claim the next batch while half the claimed-ahead jobs still wait: the
                # slots never wait for a claim's round trip, and batches stay large.
                if room <= 0 or len(self._ahead) > self.prefetch // 2:
                    self._room.wait(cfg.poll_interval)
                    continue
            try:
                t0 = time.perf_counter()
                jobs = self.store.claim(
                    queues=cfg.queues, worker=self.id, limit=room,
                    lease_seconds=cfg.lease.seconds, kinds=self.kinds,
                )
                self.observer.claimed(self.id, jobs, time.perf_counter() - t0)
                if jobs and self.tracing.enabled:
                    self._trace_claim(jobs, t0)
                backoff = 0.05
                if self.adaptive:
                    self._adapt_prefetch(full=len(jobs) == room)
            except StoreUnavailable as exc:
                log.warning("claim failed; retrying", worker=self.id, error=str(exc))
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._accept(jobs)
            if jobs:
                self._look_for_suspects = True
                self._activity = True
            else:
                try:
                    if self._claim_suspect():
                        continue
                except StoreUnavailable as exc:
                    log.warning("looking for suspects failed", worker=self.id, error=str(exc))
            if len(jobs) < room:
                if cfg.burst and not jobs:
                    with self._lock:
                        # Outcomes written too: a suspect waits for them and must run first.
                        idle = not self._running and not self._unwritten
                    if idle and self._outcomes.empty():
                        return True
                    # let in-flight work finish, then look again
                    self._stopping.wait(0.01)
                    continue
                with self._room:
                    if self._look_for_suspects and self._unwritten and not self._running:
                        # Empty but for outcomes being written: look for suspects as soon
                        # as they are stored (the flusher notifies), not a poll later.
                        self._room.wait(cfg.poll_interval)
                        continue
                try:
                    if self.store.wait_for_work(cfg.poll_interval):
                        self._look_for_suspects = True  # a reap may have made suspects
                        self._activity = True
                except StoreUnavailable:
                    self._stopping.wait(backoff)
        return False

    def _adapt_prefetch(self, *, full: bool) -> None:
        """Grow the claim-ahead when slots went idle waiting for this claim (a backlog of
        short jobs: bigger batches, fewer round trips per job); back to the base when a
        claim comes back short (no backlog: hold no more jobs than needed)."""
        if not full:
            self.prefetch = self._prefetch_base
            return
        with self._lock:
            starved = not self._ahead and self._executing < self.config.concurrency
        if starved:
            self.prefetch = min(self._prefetch_max, max(1, self.prefetch * 2))

    def _claim_suspect(self) -> bool:
        """An empty worker claims one suspect (a job whose worker died under it) and runs
        it alone (ADR 0024). Looked for only when this worker holds nothing, and only after
        a change (a wake-up, work done) or every ``SUSPECT_LOOK_INTERVAL``: one cheap read
        of a partial index, so an idle worker's cost barely moves."""
        with self._lock:
            if self._running or self._unwritten:
                return False  # not empty (its look stays due)
        now = time.monotonic()
        # A burst run looks every time: it must not stop while a suspect waits.
        if not (self._look_for_suspects or self.config.burst) \
                and now < self._next_suspect_look:
            return False
        self._look_for_suspects = False
        self._next_suspect_look = now + SUSPECT_LOOK_INTERVAL
        cfg = self.config
        if not self.store.suspect_waiting(queues=cfg.queues, kinds=self.kinds):
            return False
        t0 = time.perf_counter()
        jobs = self.store.claim(queues=cfg.queues, worker=self.id, limit=1,
                                lease_seconds=cfg.lease.seconds, kinds=self.kinds,
                                suspect=True)
        self.observer.claimed(self.id, jobs, time.perf_counter() - t0)
        if not jobs:
            return False  # another worker took it, or flow control holds it back
        if self.tracing.enabled:
            self._trace_claim(jobs, t0)
        log.info("running a suspect alone", job_id=jobs[0].id, worker=self.id,
                 crashes=len(jobs[0].crashes))
        with self._lock:
            self._alone = True
        self._look_for_suspects = True  # after it, look again: there may be more
        self._accept(jobs)
        return True

    def _accept(self, jobs: Sequence[Job]) -> None:
        """Hold claimed jobs (their leases are heartbeated from now on), start what fits."""
        entries = []
        for job in jobs:
            log.debug("job claimed", job_id=job.id, attempt=job.attempt, worker=self.id)
            entry = _Running(job, JobContext(job, self.id, Deadline.after(None)), Runnable())
            entry.ctx._log_sink = entry.logs.add
            entry.ctx._stream = self.streams.writer(job.id, job.attempt)
            entry.ctx.progress_state = ProgressState(self.clock)
            entries.append(entry)
        with self._lock:
            for entry in entries:
                self._running[entry.job.id] = entry
            self._ahead.extend(entries)
        self._dispatch()

    def _dispatch(self) -> None:
        """Begin claimed-ahead attempts while slots are free (not once stopping: what is
        left ahead is released at shutdown, without using up an attempt)."""
        if getattr(self._dispatching, "on", False):
            return  # a start that finalized at once (say, no executor): the outer loop goes on
        self._dispatching.on = True
        try:
            self._dispatch_ahead()
        finally:
            self._dispatching.on = False

    def _dispatch_ahead(self) -> None:
        while not self._stopping.is_set():
            with self._room:
                if self._executing >= self.config.concurrency or not self._ahead:
                    return
                entry = self._ahead.popleft()
                if entry.finalized:  # cancelled while it waited
                    continue
                self._executing += 1
                entry.begun = True
                self._room.notify()  # the claim loop may want the next batch now
            self._start(entry)

    def _start(self, entry: _Running) -> None:
        job = entry.job
        # The timeout runs from the start, not from the claim ahead.
        entry.ctx.deadline = Deadline.after(job.timeout, self.clock)
        entry.started = time.perf_counter()
        # Usage and spans from the start too (ADR 0022, ADR 0021): a job released while
        # held ahead never ran, and reports no usage.
        entry.meter = entry.ctx._usage = UsageMeter(job)
        entry.ctx._tracing = self.tracing
        executor = self.executors.get(job.kind)
        try:
            if executor is None:
                raise Permanent(f"this worker has no executor for jobs of kind {job.kind.value}")
            entry.runnable = executor.prepare(job)
        except BaseException as exc:  # a job that cannot even start is reported, never lost
            self._finalize(entry, self._error_outcome(job, exc, Runnable()))
            return
        if entry.runnable.acall is not None:
            loop = self._ensure_loop()
            entry.future = asyncio.run_coroutine_threadsafe(self._run_async(entry), loop)
        else:
            self._tasks.put(entry)

    # -- executing -------------------------------------------------------------

    def _executor_loop(self) -> None:
        # A _HardStop may arrive after the stopped job ended; a replacement thread runs.
        with contextlib.suppress(_HardStop):
            self._executor_body()

    def _error_outcome(self, job: Job, exc: BaseException, runnable: Runnable) -> Outcome:
        """``outcome_for_error``, or a classified failure if even that fails (the exception
        comes from user code and may be hostile: a ``__str__`` that raises, say)."""
        try:
            return outcome_for_error(job, exc, runnable, self.id, self.clock)
        except Exception as crash:
            log.error("could not classify a job's failure; failing the job", job_id=job.id,
                      worker=self.id, error=describe(crash), exc_info=crash)
            return outcome_for_crash(job, crash, self.id)

    def _executor_body(self) -> None:
        me = threading.get_ident()
        while True:
            entry = self._tasks.get()
            if entry is None:
                return
            entry.thread_id = me
            meter = entry.meter
            with self.tracing.run(entry.job, self.id) as span:
                try:
                    assert entry.runnable.call is not None
                    if meter is not None:
                        meter.enter()  # thread CPU of this attempt from here (ADR 0022)
                    try:
                        result = entry.runnable.call(entry.ctx)
                    finally:
                        if meter is not None:
                            meter.leave()
                    outcome = outcome_for_result(entry.job, result, entry.runnable, self.id)
                except _HardStop:
                    return  # finalized by whoever stopped us; a replacement thread runs
                except BaseException as exc:
                    outcome = self._error_outcome(entry.job, exc, entry.runnable)
                span.outcome(outcome)
            self._finalize(entry, outcome)
            if entry.thread_id is None:
                return  # this thread was abandoned after a hard stop; a replacement runs
            entry.thread_id = None

    async def _run_async(self, entry: _Running) -> None:
        assert entry.runnable.acall is not None
        # An async task shares its thread with others: its CPU is not measured (None).
        with self.tracing.run(entry.job, self.id) as span:
            try:
                timeout = entry.job.timeout
                result = await asyncio.wait_for(entry.runnable.acall(entry.ctx), timeout)
                outcome = outcome_for_result(entry.job, result, entry.runnable, self.id)
            except asyncio.CancelledError:
                return  # finalized by whoever cancelled us
            except TimeoutError:
                exc = Timeout(f"task exceeded its timeout of {entry.job.timeout}s")
                outcome = self._error_outcome(entry.job, exc, entry.runnable)
            except BaseException as exc:
                outcome = self._error_outcome(entry.job, exc, entry.runnable)
            span.outcome(outcome)
        self._finalize(entry, outcome)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(self._loop_error)
                target = supervised("async", loop.run_forever, pause=self._stopped)
                t = threading.Thread(target=target, name="treadle-async", daemon=True)
                t.start()
                self._loop, self._loop_thread = loop, t
            return self._loop

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        log.error("async loop error", worker=self.id, message=str(context.get("message")),
                  error=describe(exc) if exc else None, exc_info=exc)

    def _finalize(self, entry: _Running, outcome: Outcome) -> bool:
        """Hand an attempt's outcome to the flusher, once; frees its slot."""
        with self._room:
            if entry.finalized:
                return False
            entry.finalized = True
            self._unwritten += 1
            if entry.begun:
                self._executing -= 1
            self._running.pop(entry.job.id, None)
            self._room.notify()
        self._outcomes.put((entry, self._with_usage(entry, outcome)))
        if entry.begun:
            self._dispatch()  # the freed slot takes the next claimed-ahead job at once
        return True

    def _with_usage(self, entry: _Running, outcome: Outcome) -> Outcome:
        """The outcome with what the attempt cost (ADR 0022); a measuring failure costs
        the figures, never the outcome."""
        if entry.meter is None:
            return outcome
        try:
            return replace(outcome, usage=entry.meter.finish(outcome, entry.logs.bytes))
        except Exception as exc:
            log.error("usage not measured", job_id=entry.job.id, error=describe(exc))
            return outcome

    def _trace_claim(self, jobs: list[Job], t0: float) -> None:
        end = time.time_ns()
        start = end - int((time.perf_counter() - t0) * 1e9)
        try:
            self.tracing.claimed(self.id, jobs, start, end)
        except Exception as exc:  # tracing must never break the worker
            log.error("tracing failed", error=describe(exc))

    def _hard_stop(self, entry: _Running, outcome: Outcome) -> None:
        """End an attempt that will not end by itself (timeout, cancel, shutdown)."""
        entry.ctx.cancelled.set()
        if not self._finalize(entry, outcome):
            return
        if entry.future is not None:
            entry.future.cancel()
            return
        tid = entry.thread_id
        if tid is not None:
            # Raise inside the task's thread; pure-Python code stops at once, a blocking
            # C call when it returns. Either way the slot is free now and a fresh thread
            # takes this one's place; a late result is discarded (the outcome is written).
            entry.thread_id = None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(tid), ctypes.py_object(_HardStop)
            )
            self._spawn_executor()

    # -- reporting -------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            item = self._outcomes.get()
            if item is None:
                self.streams.flush(self._stopped)
                return
            batch = [] if isinstance(item, str) else [item]
            while len(batch) < 1000:
                try:
                    nxt = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._outcomes.put(None)  # keep the sentinel for after this batch
                    break
                if not isinstance(nxt, str):
                    batch.append(nxt)
            # Stream items first: a job's final record follows its last item.
            self.streams.flush(self._stopped)
            if batch:
                self._write(batch)
                with self._room:
                    self._unwritten -= len(batch)
                    self._room.notify()  # an isolated suspect's outcome may be stored now

    def _write(self, batch: list[tuple[_Running, Outcome]]) -> None:
        backoff = 0.05
        one_by_one = False
        while True:
            try:
                if one_by_one:
                    batch, accepted = store_each(self.store, self.id, batch)
                else:
                    accepted = store_batch(self.store, batch)
                break
            except StoreUnavailable as exc:
                # Outcomes are never dropped: the guarded write is safe to repeat.
                log.warning("writing outcomes failed; retrying", worker=self.id,
                            error=str(exc), pending=len(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                if one_by_one:
                    raise  # store_each deals with every failure but an outage
                # Not an outage: something in this batch cannot be written. Write the
                # outcomes one by one so one bad outcome cannot hold back the others.
                log.error("writing outcomes failed; writing them one by one", worker=self.id,
                          error=describe(exc), pending=len(batch), exc_info=exc)
                one_by_one = True
        self._report(batch, accepted)

    def _report(self, batch: list[tuple[_Running, Outcome]], accepted: list[bool]) -> None:
        for (entry, oc), ok in zip(batch, accepted, strict=True):
            self.processed += 1
            log.info(
                "job finished" if ok else "job outcome refused (lease lost)",
                job_id=entry.job.id, attempt=entry.job.attempt, worker=self.id,
                outcome=oc.kind.value,
                error_class=oc.error.error_class.value if oc.error else None,
            )
            if ok:
                try:
                    self.observer.finished(self.id, entry.job, oc,
                                           time.perf_counter() - entry.started)
                except Exception as exc:  # metrics must never break the worker
                    log.error("observer failed", error=describe(exc))
                for listener in self.on_finished:
                    try:
                        listener(entry.job, oc)
                    except Exception as exc:  # a listener must never break the worker
                        log.error("on_finished listener failed", error=repr(exc))

    # -- maintenance -----------------------------------------------------------

    def _maintenance_loop(self) -> None:
        cfg = self.config
        next_beat = 0.0
        next_reap = time.monotonic() + cfg.reap_interval
        next_tick = next_probe = next_dead = 0.0
        next_prune = time.monotonic() + self.pruner.interval
        next_service = [0.0] * len(self.services)
        running, hot_until = True, 0.0  # until the first probe says otherwise
        while not self._stopped.is_set():
            now = time.monotonic()
            try:
                self._enforce_deadlines()
                if self._activity:  # the claim loop saw work move: look soon (ADR 0025)
                    self._activity = False
                    hot_until = now + ACTIVITY_WINDOW
                    next_probe = min(next_probe, now)
                if now >= next_probe:
                    # Reap when the earliest lease runs out, not on the next fixed tick.
                    due = self.reaper.due_in()
                    running = due is not None
                    if due is None:
                        # No job runs anywhere: nothing to reap until one does; an idle
                        # worker looks again only every reap_interval (idle cost), or
                        # soon after its claim loop saw a change (a job may start).
                        next_reap = math.inf
                        next_probe = hot_until if now < hot_until else now + cfg.reap_interval
                    else:
                        next_reap = min(next_reap, now + due)
                        next_probe = now + PROBE_INTERVAL
                if now >= next_beat:
                    self._heartbeat()
                    next_beat = now + cfg.lease.heartbeat_interval
                if self.scheduler is not None and now >= next_tick:
                    self.scheduler.run_once()
                    next_tick = now + 1.0
                # Only a running job can have a dead owner (ADR 0025): idle, no look.
                if running and now >= next_dead:
                    dead = self.reaper.run_dead_once()
                    if dead.total:
                        self.observer.reaped(dead)
                    next_dead = now + DEAD_INTERVAL
                if now >= next_reap:
                    reaped = self.reaper.run_once()
                    if reaped.total:
                        self.observer.reaped(reaped)
                    next_reap = now + cfg.reap_interval
                if now >= next_prune:
                    pruned = self.pruner.run_once()
                    if pruned:
                        self.observer.pruned(pruned)
                    next_prune = now + self.pruner.interval
                # Kinds' periodic work (the workflow waker) after the leases are safe.
                for i, service in enumerate(self.services):
                    if now >= next_service[i]:
                        next_service[i] = now + service.interval
                        service.run_once()
            except StoreUnavailable as exc:
                log.warning("maintenance failed; retrying", worker=self.id, error=str(exc))
                next_beat = now + 0.5
            except Exception as exc:
                log.error("maintenance error", worker=self.id, error=describe(exc), exc_info=exc)
            self._stopped.wait(0.05)

    def _heartbeat(self) -> None:
        with self._lock:
            entries = list(self._running.values())
        res = self.store.heartbeat(
            worker=self.id,
            leases=[(e.job.id, e.job.lease_token) for e in entries],
            lease_seconds=self.config.lease.seconds,
        )
        self.observer.heartbeat(self.id, len(entries))
        for e in entries:
            # Progress rides with the heartbeat: the latest value, once per beat (ADR 0016).
            latest = e.ctx.progress_state.take_unreported()
            if latest is not None and e.ctx._stream is not None:
                try:
                    e.ctx._stream.progress(latest.done, latest.total, latest.message)
                except Exception as exc:  # one job's progress never stops the others' beat
                    log.error("progress not written", job_id=e.job.id, error=describe(exc))
            if e.job.id in res.cancel_requested:
                log.info("cancelling job on request", job_id=e.job.id, worker=self.id)
                self._hard_stop(e, Outcome(e.job.id, e.job.lease_token, OutcomeKind.CANCELLED,
                                           self.id, error=_cancelled_info()))
            elif e.job.id in res.lost:
                # Someone else holds it now; stop work whose result could not be written.
                log.warning("lease lost", job_id=e.job.id, worker=self.id)
                e.ctx.cancelled.set()

    def _enforce_deadlines(self) -> None:
        with self._lock:
            entries = list(self._running.values())
        for e in entries:
            if not e.begun:
                continue  # held ahead: its time starts when it begins (ADR 0017)
            if e.ctx.deadline.expired:
                exc = Timeout(f"task exceeded its timeout of {e.job.timeout}s")
            elif (stalled := e.ctx.progress_state.stalled()) is not None:
                exc = Timeout(stalled, detail={"stalled": True})  # ctx.watch_progress
            else:
                continue
            self._hard_stop(e, self._error_outcome(e.job, exc, e.runnable))

    # -- shutdown --------------------------------------------------------------

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.config.shutdown_grace
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

    def _close_loop(self) -> None:
        """Cancel what async work is left, stop the loop and close it (its sockets too)."""
        loop, thread = self._loop, self._loop_thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):  # a task that ignores cancellation: close anyway
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _cancelled_info() -> ErrorInfo:
    return ErrorInfo(ErrorClass.CANCELLED, "cancelled by request")


__all__ = ["Worker", "WorkerConfig"]
