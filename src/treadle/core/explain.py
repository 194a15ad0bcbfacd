""""Why is this job not running?" (ADR 0010): the first rule that holds a queued job."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.core.job import Job
from treadle.core.lifecycle import JobStatus

if TYPE_CHECKING:
    from treadle.store.base import Store


def explain(store: Store, job: Job, now: datetime) -> dict[str, Any] | None:
    """``{"rule": ..., "message": ...}`` for a queued (or quarantined) job; None otherwise.

    Rules are checked in the order the claim applies them, so the answer names what a
    claimer would stop at first."""
    if job.status is JobStatus.QUARANTINED:  # held for an operator (ADR 0015)
        return _why("quarantined", f"quarantined: its worker died under it "
                    f"{len(job.crashes)} times; release or discard it")
    if job.status is not JobStatus.QUEUED:
        return None
    if job.run_at > now:
        return _why("run_at", f"scheduled to run at {job.run_at.isoformat()}")
    queue = next((q for q in store.queues() if q.name == job.queue), None)
    if queue is not None and queue.paused:
        return _why("queue_paused", f"queue {job.queue!r} is paused")
    if queue is not None and queue.concurrency_limit is not None \
            and queue.running >= queue.concurrency_limit:
        return _why("queue_limit", f"queue {job.queue!r} runs its limit of "
                    f"{queue.concurrency_limit} jobs at once")
    limit = job.concurrency_limit
    if limit is not None and job.concurrency_key is not None and job.rate_period is not None:
        started = store.started_in_window(job.concurrency_key, job.rate_period)
        if started >= limit:
            return _why("rate_limit", f"key {job.concurrency_key!r} started {started} jobs "
                        f"in the last {job.rate_period:g} s (limit {limit})")
    elif limit is not None and job.concurrency_key is not None:
        running = store.running_with_key(job.concurrency_key)
        if running >= limit:
            return _why("key_concurrency", f"key {job.concurrency_key!r} already runs "
                        f"{running} of at most {limit} jobs")
        # A rate limit beside the concurrency limit: the claim needs room under both, so
        # with a free slot the window is what holds the job.
        if job.rate_key is not None and job.rate_limit is not None \
                and job.rate_window is not None:
            started = store.started_in_window(job.rate_key, job.rate_window)
            if started >= job.rate_limit:
                return _why("rate_limit", f"key {job.rate_key!r} started {started} jobs "
                            f"in the last {job.rate_window:g} s (limit {job.rate_limit})")
    ahead = store.queued_ahead_in_tenant(job)
    if ahead:
        return _why("behind_tenant", f"waiting behind {ahead} jobs of tenant {job.tenant!r}",
                    ahead=ahead)
    return _why("ready", "runnable: waiting for a free worker slot")


def _why(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"rule": rule, "message": message, **extra}
