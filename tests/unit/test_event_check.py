"""The check every store test's events go through can itself fail (tests/support/events.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.events import illegal_events


def ev(i: int, frm: str | None, to: str, reason: str, job: int = 1) -> dict[str, Any]:
    return {"id": i, "job_id": job, "from_status": frm, "to_status": to, "reason": reason}


def test_a_legal_history_with_a_refused_write_passes() -> None:
    assert illegal_events([
        ev(1, None, "queued", "enqueued"),
        ev(2, "queued", "running", "claimed"),
        ev(3, "running", "queued", "lease_expired"),
        ev(4, "queued", "running", "claimed"),
        ev(5, "running", "succeeded", "completed"),
        ev(6, "succeeded", "succeeded", "lease_lost"),
        ev(7, None, "queued", "enqueued", job=2),
    ]) == []


@pytest.mark.parametrize(("events", "says"), [
    ([ev(1, None, "queued", "enqueued"), ev(2, "queued", "succeeded", "completed")],
     "not in core/lifecycle.py"),
    ([ev(1, None, "queued", "enqueued"), ev(2, "queued", "running", "retry")],
     "not in core/lifecycle.py"),
    ([ev(1, None, "running", "claimed")], "has no from"),
    ([ev(1, None, "queued", "enqueued"), ev(2, None, "queued", "enqueued")], "has no from"),
    ([ev(1, None, "queued", "enqueued"), ev(2, "running", "succeeded", "completed")],
     "left the job queued"),
    ([ev(1, None, "queued", "enqueued"), ev(2, "queued", "running", "lease_lost")],
     "must not change"),
])
def test_illegal_or_broken_histories_are_reported(events: list[dict[str, Any]], says: str) -> None:
    problems = illegal_events(events)
    assert len(problems) == 1 and says in problems[0]
