"""Hostile arguments to the library's job queries and controls (ADR 0006), both stores.

Before: a job id with a lone surrogate raised the driver's UnicodeEncodeError from
``get_job``, ``cancel``, ``retry``, ``job_events`` ...; ``cancel(True)`` cancelled job 1;
a ``JobFilter`` with a surrogate tenant, statuses given as text, or a naive or textual
``created_after`` raised UnicodeEncodeError/AttributeError/ValueError; ``limit=-1``
listed every job on SQLite; ``handle.wait(timeout=nan)`` never returned and
``wait(timeout="5")`` raised TypeError. Now: not found, or a clear
``treadle`` error, with nothing changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from treadle import JobStatus, Treadle
from treadle.core.errors import InvalidInput, JobNotFound, TreadleError
from treadle.core.job import JobFilter

CONTROLS = ["get_job", "job_events", "job_logs", "job_progress", "cancel", "retry",
            "release", "discard", "job_steps", "job_artifacts"]


@pytest.mark.parametrize("job_id", ["\ud800", "a\x00", True, "1", None, 1.0])
def test_job_ids_that_are_no_id_are_not_found_and_change_nothing(
    db_url: str, job_id: Any
) -> None:
    with Treadle(db_url) as app:
        app.task(name="t")(lambda: None)
        job = app.defer("t").job
        for name in CONTROLS:
            with pytest.raises(JobNotFound):
                getattr(app, name)(job_id)
        with pytest.raises(JobNotFound):
            app.cancel(job.id, tenant="\ud800")
        assert app.get_job(job.id).status is JobStatus.QUEUED  # job 1 untouched


def test_filters_no_job_could_match_are_refused_not_raised_from_the_driver(db_url: str) -> None:
    with Treadle(db_url) as app:
        app.task(name="t")(lambda: None)
        app.defer("t")
        for names in ({"tenant": "\ud800"}, {"queue": "a\x00"}, {"task": "x" * 300},
                      {"task": 5}):
            with pytest.raises(InvalidInput):
                app.list_jobs(JobFilter(**names))
        assert len(app.list_jobs(JobFilter(statuses=["queued"]))) == 1  # type: ignore[list-item]
        refused: list[Callable[[], object]] = [
            lambda: JobFilter(statuses=["bogus"]),  # type: ignore[list-item]
            lambda: JobFilter(created_after="2020-01-01"),  # type: ignore[arg-type]
            lambda: JobFilter(created_after=datetime(1, 1, 1)),
            lambda: JobFilter(limit=-1),
            lambda: JobFilter(limit=math.nan),  # type: ignore[arg-type]
            lambda: JobFilter(before_id="x"),  # type: ignore[arg-type]
            lambda: app.list_jobs(5),  # type: ignore[arg-type]
            lambda: app.why_not_running(1),  # type: ignore[arg-type]
        ]
        for call in refused:
            with pytest.raises(InvalidInput):
                call()


@pytest.mark.parametrize("timeout", [math.nan, "5", None, True])
def test_a_wait_that_could_never_end_or_start_is_refused(db_url: str, timeout: Any) -> None:
    with Treadle(db_url) as app:
        app.task(name="t")(lambda: None)
        handle = app.defer("t")  # no worker: a NaN wait would block for ever
        with pytest.raises(TreadleError):
            handle.wait(timeout=timeout)


@pytest.mark.parametrize("options", [
    {"after": "x"}, {"after": -5}, {"after": True}, {"after": math.nan},
    {"poll": math.nan}, {"poll": -1}, {"poll": "x"}, {"poll": math.inf},
], ids=repr)
def test_a_stream_that_could_not_be_followed_is_refused(db_url: str,
                                                        options: dict[str, Any]) -> None:
    # Before: after="x" raised TypeError while reading; a NaN poll raised from the sleep
    # between polls of a running job.
    with Treadle(db_url) as app:
        app.task(name="t")(lambda: None)
        handle = app.defer("t")
        with pytest.raises(InvalidInput):
            handle.stream(**options)
