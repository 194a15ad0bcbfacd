"""What the reaper makes of an expired lease, crashes and poison-job quarantine (ADR 0015).

Backend-neutral: each store reads the expired rows (with the lease owner's liveness
record), asks :func:`reap_decision` and writes the answer with a guarded update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import DEFAULT_MAX_CRASHES, Crash


@dataclass(frozen=True)
class ReapDecision:
    status: str  # queued, failed, cancelled or quarantined
    reason: str  # the event's reason
    error: ErrorInfo
    crashes: list[dict[str, Any]] | None  # the new crash history; None: leave it as it is
    detail: dict[str, Any] | None  # the event's detail
    # A crash gives its attempt back (``max_attempts + 1``, as a release does): the job
    # did not fail, its process died, maybe under a neighbour (ADR 0015, isolation).
    refund: bool = False


def worker_died(
    last_heartbeat: datetime | None, lease_seconds: float | None, expires: datetime
) -> bool:
    """Did the lease owner stop heartbeating too (a crash), or only let this lease lapse?

    A live worker heartbeats every third of its lease, renewing all its leases in the same
    transaction that stamps its own record, so by the time a lease of its runs out its
    record is at most a third of a lease old. A dead worker's record is at least a whole
    lease older than the expiry (its last heartbeat, or the claim, set the expiry). Half a
    lease splits the two with room for a slow heartbeat either way. A worker that never
    heartbeated (killed before its first) has no record: died."""
    if last_heartbeat is None:
        return True
    if lease_seconds is None:  # a record written before 0007: heartbeat after the expiry?
        return last_heartbeat < expires
    return last_heartbeat + timedelta(seconds=lease_seconds / 2) < expires


def reap_decision(
    *,
    attempt: int,
    max_attempts: int,
    cancel_requested: bool,
    owner: str | None,
    died: bool = True,
    crashes: Sequence[Crash] = (),
    max_crashes: int | None = None,
    now: datetime | None = None,
    seen_dead: bool = False,
) -> ReapDecision:
    """What an expired lease becomes. A requested cancel wins; then a crash that reaches
    ``max_crashes`` quarantines the job (an operator should see a job that kills workers);
    a crash below it re-queues the job as a *suspect*, its attempt refunded (ADR 0024):
    crashes have their own budget. A lease that lapsed while its worker lived uses the
    attempt: retry-or-fail as usual.

    ``seen_dead``: not a lease that ran out, but a worker whose session or process was
    seen to end (ADR 0018): a crash for certain, recorded with the reason ``worker_died``."""
    message = (f"worker {owner} died during attempt {attempt}" if seen_dead else
               f"lease expired: worker {owner} stopped heartbeating during attempt {attempt}")
    err = ErrorInfo(
        ErrorClass.LEASE_LOST, message,
        {"worker": owner, "attempt": attempt, "worker_died": died or seen_dead},
    )
    died = died or seen_dead
    if cancel_requested:
        return ReapDecision("cancelled", "cancelled", err, None, None)
    history: list[dict[str, Any]] | None = None
    if died and now is not None:
        history = [c.to_json() for c in crashes] + [Crash(now, owner, attempt).to_json()]
        limit = max_crashes or DEFAULT_MAX_CRASHES
        if len(history) >= limit:
            err = ErrorInfo(
                ErrorClass.LEASE_LOST,
                f"quarantined: its worker died under it {len(history)} times "
                f"(max_crashes {limit}); release or discard it",
                {"crashes": history, "max_crashes": limit},
            )
            return ReapDecision("quarantined", "quarantined", err, history,
                                {"crashes": history, "max_crashes": limit}, refund=True)
    if history is not None:
        # A crash below the limit: back to the queue as a suspect (``crashes`` set), its
        # attempt given back. Only ``max_crashes`` ends it, never the attempts: a job held
        # ahead, or running beside a poison job, did nothing wrong.
        return ReapDecision("queued", "worker_died" if seen_dead else "lease_expired", err,
                            history, {"crash": history[-1], "attempt_refunded": True},
                            refund=True)
    status = "failed" if attempt >= max_attempts else "queued"
    return ReapDecision(status, "worker_died" if seen_dead else "lease_expired", err, None,
                        None)
