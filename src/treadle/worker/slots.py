"""Executor slots: begin held-ahead attempts as slots free up, run them, end them.

``concurrency`` executor threads run sync tasks and one asyncio loop runs async ones.
Everything that starts or ends an attempt is here (``_finalize`` frees the slot and
hands the outcome to the flusher, ``_hard_stop`` ends an attempt that will not end by
itself), so the slot count is kept in one module.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
import time
from dataclasses import replace
from typing import Any

from treadle.core.budget import Deadline
from treadle.core.errors import (
    Permanent,
    Timeout,
)
from treadle.core.job import Job
from treadle.core.outcome import Outcome
from treadle.executors.base import Runnable
from treadle.logs import get_logger
from treadle.usage import UsageMeter
from treadle.worker.outcome import outcome_for_crash, outcome_for_error, outcome_for_result
from treadle.worker.state import WorkerState, _HardStop, _Running
from treadle.worker.supervise import describe, supervised

log = get_logger("treadle.worker")


class Slots(WorkerState):
    """The worker's executor slots: begin, run and end attempts."""

    def _spawn_executor(self) -> None:
        target = supervised("executor", self._executor_loop, pause=self._stopped)
        t = threading.Thread(target=target, name="treadle-exec", daemon=True)
        t.start()

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
        entry.ctx._usage = UsageMeter(job)
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
            meter = entry.ctx._usage
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
        meter = entry.ctx._usage
        if meter is None:
            return outcome
        try:
            return replace(outcome, usage=meter.finish(outcome, entry.logs.bytes))
        except Exception as exc:
            log.error("usage not measured", job_id=entry.job.id, error=describe(exc))
            return outcome

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

