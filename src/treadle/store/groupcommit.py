"""Group commit for submissions (ADR 0019): concurrent enqueues share one transaction.

A durable commit costs one fsync (SQLite ``synchronous=FULL``, PostgreSQL's WAL flush);
the rows cost little. Sixteen threads or requests each enqueuing one job paid sixteen
fsyncs; here they pay one. Every caller still returns only once *its own* jobs are
committed, and each gets its own answer: a submission the database refuses (or whose
guard refuses it) fails alone, and the others of its batch commit.

How a submission travels:

- **Idle: inline.** A blocking caller that finds nothing committing and nothing waiting
  commits its submission on its own thread, at once: a lone or sequential producer never
  waits for a batch window or a thread hand-off.
- **Busy: gathered.** Otherwise it joins the queue and waits for its answer. The
  committer threads (one per lane, started on first use, supervised) take everything
  waiting, commit it as one batch (one transaction), then answer each caller.
  Non-blocking callers (the HTTP API's event loop) always go through the queue and get
  a future.
- **Under load: the answered come back.** After answering a batch of blocking callers
  (threads), the committer waits up to ``gather`` seconds for as many submissions as
  the callers it answered plus those already waiting, and no caller commits inline
  meanwhile (ADR 0032). Threads that each submit again as soon as they are answered
  then share one commit, not two alternating half-size ones: with 16 threads, batches
  of ~15 instead of ~8 and half the commits. A lone or sequential caller never meets
  it (it is inline: the committer answers no one); futures (the HTTP API) do not count
  towards the wait, so requests never wait for other requests to come back.

The backend supplies ``commit(batch)``: it returns one entry per submission, a list of
``Enqueued`` or the exception that refused that submission. If ``commit`` raises, the
batch's transaction did not commit (or may not have: a lost connection), and every
caller of the batch gets that error; nothing is reported durable that is not.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

from treadle.core.errors import StoreUnavailable
from treadle.core.job import Enqueued, NewJob
from treadle.logs import get_logger
from treadle.store.base import Transaction
from treadle.worker.supervise import describe, supervised

log = get_logger("treadle.store")

# Jobs per batch: enough to amortise a commit over hundreds of producers, small enough
# that one batch's statement stays short. A submission larger than this goes alone.
MAX_BATCH_JOBS = 2000
# How long the committer waits, after answering blocking callers, for them to submit
# again (see the module docstring): longer than a thread takes from its answer to its
# next submission (tens of µs of Python, once each for 16 threads on one GIL), shorter
# than a commit. 0 turns it off.
GATHER_SECONDS = 0.0005


class Guard(Protocol):
    """Runs in the batch's transaction before a submission's jobs are inserted.

    Raising refuses that submission alone: its statements are rolled back to a savepoint
    and the caller gets the exception. It must not enqueue through the store (it holds
    the committer) and must be safe to run again (a batch whose every job has an
    idempotency key is re-sent after a lost connection, ADR 0007)."""

    def __call__(self, tx: Transaction) -> None: ...


class Submission:
    """One caller's jobs (committed all or none) and where its answer goes: a future
    (``submit``, awaited on an event loop) or, for a thread blocked in ``enqueue``, a
    lock released with the answer (ADR 0027: a future's condition, its waiter lock and
    notify_all cost more than the rest of handing a job over)."""

    __slots__ = ("_done", "_result", "future", "guard", "jobs")

    def __init__(self, jobs: Sequence[NewJob], guard: Guard | None = None, *,
                 future: Future[list[Enqueued]] | None = None) -> None:
        self.jobs = jobs
        self.guard = guard
        self.future = future
        self._done: threading.Lock | None = None
        self._result: Result | None = None
        if future is None:
            self._done = threading.Lock()
            self._done.acquire()  # held until answered; the caller waits to take it

    def start(self) -> bool:
        """Called as its batch starts: False if it was withdrawn (its future cancelled)."""
        return self.future is None or self.future.set_running_or_notify_cancel()

    def answer(self, result: Result) -> None:
        if self.future is not None:
            if isinstance(result, Exception):
                self.future.set_exception(result)
            else:
                self.future.set_result(result)
            return
        self._result = result
        assert self._done is not None
        self._done.release()

    def wait(self) -> list[Enqueued]:
        """Block until answered (a blocking caller's submission); its jobs or its error."""
        assert self._done is not None
        self._done.acquire()
        assert self._result is not None
        return unwrap(self._result)


Result = list[Enqueued] | Exception
Commit = Callable[[Sequence[Submission]], list[Result]]


def unwrap(result: Result) -> list[Enqueued]:
    """A submission's jobs, or raise the error that refused it."""
    if isinstance(result, Exception):
        raise result
    return result


class GroupCommitter:
    """Coalesces concurrent submissions to one store (see the module docstring)."""

    def __init__(
        self, name: str, commit: Commit, *, lanes: int = 1, max_jobs: int = MAX_BATCH_JOBS,
        gather: float = GATHER_SECONDS, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if lanes < 1 or max_jobs < 1 or gather < 0:
            raise ValueError("lanes and max_jobs must be at least 1, gather not negative")
        self.name = name
        self._commit = commit
        # Batches in flight at once: 1 for SQLite (one writer), more where the database
        # can flush one batch while the next is sent (PostgreSQL, over its pool).
        self._lanes = lanes
        self._max_jobs = max_jobs
        self._cond = threading.Condition()
        self._pending: deque[Submission] = deque()
        self._in_flight = 0  # batches (inline or the threads') being committed
        # With one lane only: with more, another lane would take what this one gathers.
        self._gather = gather if lanes == 1 else 0.0
        self._monotonic = monotonic
        # While not 0: the committer is gathering, waiting for this many submissions
        # (nobody commits inline meanwhile); see the module docstring.
        self._expect = 0
        self._closed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches = 0  # committed batches (observability and tests)
        self.largest = 0  # most submissions seen in one batch

    # -- callers ---------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], guard: Guard | None = None) -> list[Enqueued]:
        """Commit ``jobs`` (with ``guard``), coalesced with concurrent callers; block
        until they are durable, and return them (or raise this submission's error)."""
        sub = Submission(jobs, guard)
        with self._cond:
            self._check_open()
            # Inline only when nothing is committing: a caller arriving while a batch is
            # in flight waits for the next batch (with a second lane free, a lone inline
            # commit there would take it for one job while others queue behind it).
            inline = self._in_flight == 0 and not self._pending and not self._expect
            if inline:
                self._in_flight += 1
            else:
                self._queue(sub)
        if not inline:
            return sub.wait()
        try:  # on this thread, no future: its error is raised here as it is
            results = self._commit([sub])
        finally:
            with self._cond:
                self._in_flight -= 1
                if self._pending:
                    self._cond.notify_all()
        if len(results) != 1:  # a backend bug: never guess
            raise RuntimeError(f"group commit answered {len(results)} of 1")
        self.batches += 1
        return unwrap(results[0])

    def submit(self, jobs: Sequence[NewJob], guard: Guard | None = None) -> Future[list[Enqueued]]:
        """Queue ``jobs`` for the committer thread; the future resolves once they are
        durable. Cancelling it before its batch starts withdraws the submission."""
        future: Future[list[Enqueued]] = Future()
        with self._cond:
            self._check_open()
            self._queue(Submission(jobs, guard, future=future))
        return future

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _queue(self, sub: Submission) -> None:
        """Called holding the condition."""
        if not self._threads:
            for lane in range(self._lanes):
                thread = threading.Thread(
                    target=supervised(f"group-commit-{self.name}", self._loop, pause=self._stop),
                    name=f"treadle-group-commit-{self.name}-{lane}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._pending.append(sub)
        # Wake the committer only when it can act: a lane free (the end of each commit
        # wakes it anyway) and, while it gathers, once all it waits for are here. Each
        # needless wake-up was a context switch per submission (ADR 0032).
        if self._in_flight < self._lanes and len(self._pending) >= self._expect:
            self._cond.notify_all()

    # -- the committer thread ------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._expect:
                    self._gather_pending()
                while self._in_flight >= self._lanes or not self._pending:
                    if self._closed and not self._pending:
                        return
                    self._cond.wait()
                batch = self._take()
                self._in_flight += 1
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._expect = self._expected_after(batch)
                    self._cond.notify_all()

    def _expected_after(self, batch: list[Submission]) -> int:
        """Called holding the condition, once ``batch`` was answered: the submissions to
        gather before the next batch (0: none, take what is there)."""
        if not self._gather or self._closed:
            return 0
        answered = sum(1 for sub in batch if sub.future is None)  # threads, not futures
        expect = answered + len(self._pending) if answered else 0
        # Two or more: a lone caller answered by the committer (it came while an inline
        # commit was in flight) goes inline again next time, without a thread hand-off.
        return expect if expect >= 2 else 0

    def _gather_pending(self) -> None:
        """Called holding the condition: wait until ``_expect`` submissions are queued,
        at most ``gather`` seconds, then stop gathering."""
        try:
            deadline = self._monotonic() + self._gather
            while len(self._pending) < self._expect and not self._closed:
                left = deadline - self._monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        finally:
            self._expect = 0

    def _take(self) -> list[Submission]:
        """Everything waiting, up to ``max_jobs`` jobs (always at least one submission);
        withdrawn (cancelled) submissions are dropped here, before anything is written."""
        batch: list[Submission] = []
        jobs = 0
        while self._pending:
            sub = self._pending[0]
            if batch and jobs + len(sub.jobs) > self._max_jobs:
                break
            self._pending.popleft()
            if sub.start():
                batch.append(sub)
                jobs += len(sub.jobs)
        return batch

    def _run(self, batch: list[Submission]) -> None:
        """Commit one batch and answer each of its callers, whatever happens."""
        if not batch:
            return
        try:
            results = self._commit(batch)
            if len(results) != len(batch):  # a backend bug: never guess who got what
                raise RuntimeError(f"group commit answered {len(results)} of {len(batch)}")
        except Exception as exc:
            if len(batch) > 1:
                log.warning("group commit failed; every caller of the batch gets the error",
                            committer=self.name, submissions=len(batch), error=describe(exc))
            for sub in batch:
                sub.answer(exc)
            return
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        for sub, result in zip(batch, results, strict=True):
            sub.answer(result)

    # -- lifecycle -------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new submissions, commit what is queued, stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        self._stop.set()
        with self._cond:  # the thread could not finish in time: never leave a caller hanging
            while self._pending:
                sub = self._pending.popleft()
                if sub.start():
                    sub.answer(StoreUnavailable("the store closed before commit"))
