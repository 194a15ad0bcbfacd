"""Measuring what one attempt costs, in the worker (ADR 0022).

A :class:`UsageMeter` lives as long as one attempt. The worker starts it when the attempt
starts (not when it is claimed ahead), the executor thread marks where the task's own code
runs (``enter``/``leave``: thread CPU time, so other tasks on other threads are not
counted), executors add what they know
(a sandbox's CPU and peak memory, an agent's tokens and cost) through
``JobContext.record_usage``, and at the end the worker folds it into the outcome, which
the store writes with the attempt (``store/usage.py``).
"""

from __future__ import annotations

import sys
import threading
import time

from treadle.core.job import Job
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage


def thread_cpu_of(native_id: int) -> float | None:
    """CPU seconds of another live thread of this process (Linux), else None.

    Used when an attempt is ended from outside (timeout, cancel, shutdown) while its
    thread still runs. The clock id is built from the kernel thread id (the encoding
    glibc's ``pthread_getcpuclockid`` uses), so a thread that has already exited gives
    EINVAL instead of another thread's clock.
    """
    if sys.platform != "linux" or native_id <= 0:
        return None
    try:
        return time.clock_gettime(((~native_id) << 3) | 6)  # per-thread, CPUCLOCK_SCHED
    except (OSError, OverflowError):
        return None


class UsageMeter:
    """One attempt's measurements; thread-safe (executors may report from any thread)."""

    def __init__(self, job: Job) -> None:
        self._lock = threading.Lock()
        self.started = time.perf_counter()
        self.wait_seconds: float | None = None
        if job.started_at is not None:
            self.wait_seconds = max(0.0, (job.started_at - job.run_at).total_seconds())
        self._native: int | None = None  # the thread running the task's code now
        self._cpu_start = 0.0
        self._thread_cpu: float | None = None  # None: the code never ran on a thread
        self._extra_cpu = 0.0  # CPU spent elsewhere on this attempt's behalf (a sandbox)
        self._peak: int | None = None
        self._tokens_in = 0
        self._tokens_out = 0
        self._cost = 0.0

    # -- the worker ------------------------------------------------------------------

    def enter(self) -> None:
        """Called on the executor thread right before the task's code runs."""
        with self._lock:
            self._native = threading.get_native_id()
            self._cpu_start = time.thread_time()

    def leave(self) -> None:
        """Called on the same thread right after the task's code returned or raised."""
        now = time.thread_time()
        with self._lock:
            if self._native == threading.get_native_id():
                self._thread_cpu = (self._thread_cpu or 0.0) + (now - self._cpu_start)
                self._native = None

    def finish(self, outcome: Outcome, log_bytes: int) -> Usage:
        """The attempt's usage as of now (its end), from any thread."""
        wall = time.perf_counter() - self.started
        with self._lock:
            cpu = self._thread_cpu
            if self._native is not None:  # ended from outside while its code still runs
                if self._native == threading.get_native_id():
                    cpu = (cpu or 0.0) + time.thread_time() - self._cpu_start
                else:
                    now = thread_cpu_of(self._native)
                    if now is not None:
                        cpu = (cpu or 0.0) + max(0.0, now - self._cpu_start)
            if self._extra_cpu:
                cpu = (cpu or 0.0) + self._extra_cpu
            base = outcome.usage or Usage()
            result_bytes = base.result_bytes if outcome.kind is OutcomeKind.SUCCEEDED else 0
            return Usage(
                wall_seconds=wall, cpu_seconds=cpu, peak_memory_bytes=self._peak,
                result_bytes=result_bytes, log_bytes=log_bytes,
                wait_seconds=self.wait_seconds, tokens_in=self._tokens_in,
                tokens_out=self._tokens_out, cost_usd=self._cost,
            ).clean()

    # -- executors -------------------------------------------------------------------

    def record(
        self,
        *,
        cpu_seconds: float | None = None,
        peak_memory_bytes: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Add what this attempt used outside its thread (see ``JobContext.record_usage``)."""
        clean = Usage(cpu_seconds=cpu_seconds, peak_memory_bytes=peak_memory_bytes,
                      tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd).clean()
        with self._lock:
            self._extra_cpu += clean.cpu_seconds or 0.0
            if clean.peak_memory_bytes is not None:
                self._peak = max(self._peak or 0, clean.peak_memory_bytes)
            self._tokens_in += clean.tokens_in
            self._tokens_out += clean.tokens_out
            self._cost += clean.cost_usd
