"""The job lifecycle as an explicit table of legal transitions (ADR 0002).

Stores enforce the same table in SQL through guarded updates
(``WHERE status = 'running' AND lease_token = ...``); this module is the
single description of it, used by the core and checked by property tests.
"""

from __future__ import annotations

import enum

from treadle.core.errors import IllegalTransition


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Suspended without a lease or a worker slot until the store wakes it (a workflow
    # sleeping, waiting for an event or for its child jobs): see ADR 0009.
    WAITING = "waiting"
    # Held after its attempts kept killing their workers (ADR 0015): not run again until an
    # operator releases it (back to queued) or discards it (failed). Not terminal.
    QUARANTINED = "quarantined"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# (from, to) -> the reasons that may cause it. A reason names *why* the
# transition happened; it is what the event log shows.
TRANSITIONS: dict[tuple[JobStatus, JobStatus], frozenset[str]] = {
    (JobStatus.QUEUED, JobStatus.RUNNING): frozenset({"claimed"}),
    (JobStatus.QUEUED, JobStatus.CANCELLED): frozenset({"cancelled"}),
    (JobStatus.RUNNING, JobStatus.SUCCEEDED): frozenset({"completed"}),
    (JobStatus.RUNNING, JobStatus.FAILED): frozenset(
        {"failed", "attempts_exhausted", "lease_expired", "worker_died", "timeout"}
    ),
    (JobStatus.RUNNING, JobStatus.QUEUED): frozenset(
        # worker_died: the worker's session or process ended (ADR 0018).
        {"retry", "lease_expired", "worker_died", "released", "continued"}
    ),
    (JobStatus.RUNNING, JobStatus.CANCELLED): frozenset({"cancelled"}),
    # A workflow's step checkpoints are events of the running attempt that leave its
    # status alone (ADR 0009): recorded so the timeline shows each step.
    (JobStatus.RUNNING, JobStatus.RUNNING): frozenset(
        {"step_started", "step_completed", "step_failed"}
    ),
    # Suspension is an outcome of an attempt, fenced by its lease token like the others.
    (JobStatus.RUNNING, JobStatus.WAITING): frozenset({"waiting"}),
    # The store wakes a waiting job when its condition holds (time, event, children).
    (JobStatus.WAITING, JobStatus.QUEUED): frozenset({"woken"}),
    (JobStatus.WAITING, JobStatus.CANCELLED): frozenset({"cancelled"}),
    # A finished job may be re-run by a user (`retry`): a new attempt series.
    (JobStatus.FAILED, JobStatus.QUEUED): frozenset({"manual_retry"}),
    (JobStatus.CANCELLED, JobStatus.QUEUED): frozenset({"manual_retry"}),
    # Poison jobs (ADR 0015): the reaper quarantines a job whose worker died under it
    # max_crashes times; an operator releases (crash count reset) or discards it.
    (JobStatus.RUNNING, JobStatus.QUARANTINED): frozenset({"quarantined"}),
    (JobStatus.QUARANTINED, JobStatus.QUEUED): frozenset({"quarantine_released"}),
    (JobStatus.QUARANTINED, JobStatus.FAILED): frozenset({"discarded"}),
    (JobStatus.QUARANTINED, JobStatus.CANCELLED): frozenset({"cancelled"}),
}

# The event written when a job is first enqueued has no "from" state.
CREATED_REASON = "enqueued"


def is_legal(from_status: JobStatus, to_status: JobStatus, reason: str | None = None) -> bool:
    reasons = TRANSITIONS.get((from_status, to_status))
    if reasons is None:
        return False
    return reason is None or reason in reasons


def check_transition(
    from_status: JobStatus, to_status: JobStatus, reason: str | None = None
) -> None:
    """Raise :class:`IllegalTransition` unless the move is in the table."""
    if not is_legal(from_status, to_status, reason):
        raise IllegalTransition(
            f"illegal transition {from_status.value} -> {to_status.value}"
            + (f" ({reason})" if reason else ""),
            detail={"from": from_status.value, "to": to_status.value, "reason": reason},
        )
