"""The claim loop: claim batches under a lease, hold them ahead, isolate suspects.

Runs in the caller's thread. What it claims waits held ahead (ADR 0017) until a slot
(``worker/slots.py``) begins it; a suspect (ADR 0024) is claimed alone by an empty
worker. The claim-ahead sizing lives here too: it is a decision about the next claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from treadle.context import JobContext
from treadle.core.budget import Deadline
from treadle.core.errors import StoreUnavailable
from treadle.core.job import Job
from treadle.core.progress import ProgressState
from treadle.executors.base import Runnable
from treadle.logs import get_logger
from treadle.store.base import Parking
from treadle.worker.slots import Slots
from treadle.worker.state import _Running
from treadle.worker.supervise import describe

log = get_logger("treadle.worker")

# How often an idle worker looks for suspects without a wake-up (ADR 0024): a safety net,
# as the reap that makes suspects wakes the waiting workers.
SUSPECT_LOOK_INTERVAL = 10.0


class Claiming(Slots):
    """The worker's claim loop (its caller's thread); see the module docstring."""

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
            # Jobs handed to this worker (ADR 0034) that a heartbeat read while it was busy.
            if handed := self.store.take_handed(self.id):
                self._accept(handed)
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
                    if self._wait_for_work():
                        self._look_for_suspects = True  # a reap may have made suspects
                        self._activity = True
                except StoreUnavailable:
                    self._stopping.wait(backoff)
        return False

    def _wait_for_work(self) -> bool:
        """The idle wait. Jobs an enqueue handed to this worker meanwhile (ADR 0034) come
        claimed: they are started and the wait goes on, with no claim of its own (the
        store ends the next wait at once if other work was announced meanwhile)."""
        while True:
            woke = self.store.wait_for_work(self.config.poll_interval, self._parking())
            t0 = time.perf_counter()
            handed = self.store.take_handed(self.id)
            if not handed:
                return woke
            # Claimed by their enqueue; the claim span and metrics cover taking them.
            self.observer.claimed(self.id, handed, time.perf_counter() - t0)
            if self.tracing.enabled:
                self._trace_claim(handed, t0)
            self._accept(handed)
            self._activity = True
            with self._room:
                full = len(self._running) >= self.config.concurrency + self.prefetch
            if full or self._stopping.is_set():
                return True

    def _parking(self) -> Parking | None:
        """What the store needs to hand this worker jobs (ADR 0034). A burst run never
        parks (it ends when the queue is empty); a suspect runs alone, so none then."""
        cfg = self.config
        if cfg.burst:
            return None
        with self._lock:
            busy = self._executing + len(self._ahead)
            free = 0 if self._alone else max(0, cfg.concurrency - busy)
        return Parking(self.id, free, cfg.queues, self.kinds, cfg.lease.seconds)

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
        # Alone means no hand-offs either (ADR 0034): unpark first. A job handed before
        # that runs instead; the suspect waits for the next look, when this worker is empty.
        if handed := self.store.unpark(self.id):
            self._look_for_suspects = True
            self._accept(handed)
            return True
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
            # The worker's clock for stall detection, given at construction (the default
            # would build a second ProgressState per job only to be replaced).
            ctx = JobContext(job, self.id, Deadline.after(None),
                             progress_state=ProgressState(self.clock))
            entry = _Running(job, ctx, Runnable())
            entry.ctx._log_sink = entry.logs.add
            entry.ctx._stream = self.streams.writer(job.id, job.attempt)
            entries.append(entry)
        with self._lock:
            for entry in entries:
                self._running[entry.job.id] = entry
            self._ahead.extend(entries)
        self._dispatch()

    def _trace_claim(self, jobs: list[Job], t0: float) -> None:
        end = time.time_ns()
        start = end - int((time.perf_counter() - t0) * 1e9)
        try:
            self.tracing.claimed(self.id, jobs, start, end)
        except Exception as exc:  # tracing must never break the worker
            log.error("tracing failed", error=describe(exc))

