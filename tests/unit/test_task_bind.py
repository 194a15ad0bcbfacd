"""The task executor checks a payload against its function's signature; the check is
remembered per set of payload keys (issue 13), and a remembered fit never lets a payload
with other keys through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from treadle import Treadle
from treadle.core.errors import InvalidInput
from treadle.core.job import Job, JobKind
from treadle.core.lifecycle import JobStatus
from treadle.executors.task import TaskExecutor


def _job(payload: dict[str, object]) -> Job:
    now = datetime.now(UTC)
    return Job(id=1, queue="default", kind=JobKind.TASK, task="add", payload=payload,
               status=JobStatus.RUNNING, priority=0, run_at=now, attempt=1, max_attempts=1,
               timeout=None, tenant="default", created_at=now)


def test_a_remembered_fit_is_per_key_set_and_never_admits_other_keys() -> None:
    app = Treadle("sqlite:///:memory:")

    @app.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    ex = TaskExecutor(app)
    assert ex.prepare(_job({"a": 1, "b": 2})).call is not None
    assert ex.prepare(_job({"a": 3, "b": 4})).call is not None  # remembered fit
    assert ex.prepare(_job({"a": 5})).call is not None  # another key set, checked
    bad_payloads: tuple[dict[str, object], ...] = ({"b": 1}, {"a": 1, "c": 2}, {})
    for bad in bad_payloads:
        with pytest.raises(InvalidInput, match="payload does not match task 'add'"):
            ex.prepare(_job(bad))
    with pytest.raises(InvalidInput):  # a refusal is not remembered as a fit
        ex.prepare(_job({"b": 1}))
    assert ex._fits["add"] == {frozenset({"a", "b"}), frozenset({"a"})}
