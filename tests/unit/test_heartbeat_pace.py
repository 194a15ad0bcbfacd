"""A worker's heartbeat pace (ADR 0029): the lease's pace while it holds leases, a slow
one while it holds none, and a claim made after an idle beat is renewed in time."""

from __future__ import annotations

from treadle.core.lease import LeaseConfig
from treadle.worker.pace import IDLE_HEARTBEAT, RETRY_AFTER, HeartbeatPace

LEASE = LeaseConfig()


def test_an_idle_worker_beats_at_the_idle_pace() -> None:
    pace = HeartbeatPace(LEASE.heartbeat_interval)
    assert pace.due(0.0, holding=False)  # the first beat: at once
    pace.beaten(0.0, holding=False)
    assert not pace.due(LEASE.heartbeat_interval, holding=False)
    assert not pace.due(IDLE_HEARTBEAT - 0.01, holding=False)
    assert pace.due(IDLE_HEARTBEAT, holding=False)
    assert IDLE_HEARTBEAT < 60  # inside the workers page's "stale" threshold


def test_a_worker_holding_leases_beats_at_the_lease_pace() -> None:
    pace = HeartbeatPace(LEASE.heartbeat_interval)
    pace.beaten(0.0, holding=True)
    assert not pace.due(LEASE.heartbeat_interval - 0.01, holding=True)
    assert pace.due(LEASE.heartbeat_interval, holding=True)


def test_a_claim_after_an_idle_beat_is_renewed_within_the_lease_interval() -> None:
    pace = HeartbeatPace(LEASE.heartbeat_interval)
    pace.beaten(100.0, holding=False)
    # A job claimed 1 s after the idle beat: the next beat comes at the lease's pace
    # counted from the last beat, not 30 s later (the lease would run out first).
    assert not pace.due(101.0, holding=True)
    assert pace.due(100.0 + LEASE.heartbeat_interval, holding=True)
    # A claim made long after the last idle beat is renewed at once.
    pace.beaten(200.0, holding=False)
    assert pace.due(200.0 + LEASE.heartbeat_interval + 5, holding=True)
    assert LEASE.heartbeat_interval < LEASE.seconds


def test_a_failed_beat_is_retried_soon_but_not_in_a_loop() -> None:
    pace = HeartbeatPace(LEASE.heartbeat_interval)
    pace.beaten(0.0, holding=True)
    pace.failed(LEASE.heartbeat_interval)
    assert not pace.due(LEASE.heartbeat_interval + 0.01, holding=True)
    assert pace.due(LEASE.heartbeat_interval + RETRY_AFTER, holding=True)
