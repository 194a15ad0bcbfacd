"""The reap decision after a crash (ADR 0015, ADR 0024): a crash refunds its attempt and
counts towards max_crashes; a lease that lapsed while its worker lived uses the attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from treadle.core.job import Crash
from treadle.store.crashes import reap_decision, worker_died

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _crashes(n: int) -> tuple[Crash, ...]:
    return tuple(Crash(NOW - timedelta(minutes=n - i), f"w{i}", i + 1) for i in range(n))


def test_a_crash_on_the_last_attempt_requeues_the_job_with_its_attempt_refunded() -> None:
    d = reap_decision(attempt=1, max_attempts=1, cancel_requested=False, owner="w",
                      died=True, now=NOW)
    assert (d.status, d.reason, d.refund) == ("queued", "lease_expired", True)
    assert d.crashes is not None and [c["worker"] for c in d.crashes] == ["w"]
    assert d.detail is not None and d.detail["attempt_refunded"] is True
    assert d.detail["crash"]["attempt"] == 1


def test_a_worker_seen_dead_is_a_crash_with_its_own_reason() -> None:
    d = reap_decision(attempt=2, max_attempts=5, cancel_requested=False, owner="w",
                      died=False, crashes=_crashes(1), now=NOW, seen_dead=True)
    assert (d.status, d.reason, d.refund) == ("queued", "worker_died", True)
    assert d.crashes is not None and len(d.crashes) == 2


def test_the_crash_that_reaches_max_crashes_quarantines_and_refunds() -> None:
    d = reap_decision(attempt=3, max_attempts=9, cancel_requested=False, owner="w",
                      died=True, crashes=_crashes(2), max_crashes=3, now=NOW)
    assert (d.status, d.reason, d.refund) == ("quarantined", "quarantined", True)
    assert d.crashes is not None and len(d.crashes) == 3
    below = reap_decision(attempt=3, max_attempts=9, cancel_requested=False, owner="w",
                          died=True, crashes=_crashes(2), max_crashes=4, now=NOW)
    assert below.status == "queued"


def test_a_lapsed_lease_of_a_live_worker_uses_the_attempt() -> None:
    again = reap_decision(attempt=1, max_attempts=2, cancel_requested=False, owner="w",
                          died=False, now=NOW)
    assert (again.status, again.refund, again.crashes) == ("queued", False, None)
    last = reap_decision(attempt=2, max_attempts=2, cancel_requested=False, owner="w",
                         died=False, crashes=_crashes(2), now=NOW)
    # Not a crash: the history is left as it is, and the last attempt is gone.
    assert (last.status, last.refund, last.crashes) == ("failed", False, None)


def test_a_requested_cancel_wins_over_a_crash() -> None:
    d = reap_decision(attempt=1, max_attempts=3, cancel_requested=True, owner="w",
                      died=True, crashes=_crashes(2), max_crashes=3, now=NOW)
    assert (d.status, d.refund, d.crashes) == ("cancelled", False, None)


def test_worker_died_splits_a_stopped_heartbeat_from_a_lapsed_lease() -> None:
    expires = NOW
    assert worker_died(None, 30.0, expires)  # never heartbeated
    assert worker_died(expires - timedelta(seconds=30), 30.0, expires)
    assert not worker_died(expires - timedelta(seconds=10), 30.0, expires)
