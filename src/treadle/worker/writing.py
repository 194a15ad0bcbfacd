"""How the flusher writes a batch of outcomes (with their log lines) to the store.

``store_batch`` is the normal path: one ``add_logs`` per attempt with lines, one
``complete`` for the batch. When a batch fails for a reason other than an outage,
``store_each`` writes the outcomes one by one so a single outcome the store refuses
cannot hold back the others; that one fails its job with a classified error, and if even
that cannot be written the job is left to the reaper (its lease expires). ADR 0006.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from treadle.core.errors import StoreUnavailable
from treadle.core.job import Job
from treadle.core.outcome import Outcome
from treadle.logs import get_logger
from treadle.store import Store
from treadle.worker.attempt_log import AttemptLog
from treadle.worker.outcome import outcome_for_crash
from treadle.worker.supervise import describe

log = get_logger("treadle.worker")


class Pending(Protocol):
    """A finished attempt waiting to be written (the worker's running entry)."""

    job: Job
    logs: AttemptLog


P = TypeVar("P", bound=Pending)


def store_batch(store: Store, batch: Sequence[tuple[P, Outcome]]) -> list[bool]:
    for entry, _ in batch:
        lines = entry.logs.take()
        if lines:
            try:
                store.add_logs(entry.job.id, entry.job.attempt, lines)
            except BaseException:
                entry.logs.put_back(lines)  # written with the retry, not lost
                raise
    return store.complete([oc for _, oc in batch])


def store_each(
    store: Store, worker: str, batch: Sequence[tuple[P, Outcome]]
) -> tuple[list[tuple[P, Outcome]], list[bool]]:
    """Write each outcome alone; returns what was written and whether each was accepted.

    An outage (``StoreUnavailable``) is raised: the caller retries the whole batch, and
    outcomes already written are recognised by the store as replays."""
    written: list[tuple[P, Outcome]] = []
    accepted: list[bool] = []
    for entry, oc in batch:
        try:
            accepted.extend(store_batch(store, [(entry, oc)]))
            written.append((entry, oc))
            continue
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.error("could not write a job's outcome; failing the job", worker=worker,
                      job_id=entry.job.id, outcome=oc.kind.value, error=describe(exc),
                      exc_info=exc)
            dropped = entry.logs.take()  # the lines may be the cause; the outcome matters
            if dropped:
                log.error("log lines of the attempt not stored", job_id=entry.job.id,
                          lines=len(dropped))
            crash = outcome_for_crash(entry.job, exc, worker)
        try:
            accepted.extend(store_batch(store, [(entry, crash)]))
            written.append((entry, crash))
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.error("could not record the failure either; the reaper will handle the job "
                      "when its lease expires", worker=worker, job_id=entry.job.id,
                      error=describe(exc), exc_info=exc)
    return written, accepted
