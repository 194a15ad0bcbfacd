"""Hostile options on the library surface (ADR 0006): ``@app.task`` options, ``defer`` /
``configure`` / ``NewJob`` fields, schedules, retry delays and database URLs. Both stores.

Before: a wrong type or a number no store or clock can hold came out as the Python error
of whatever first tripped on it (TypeError, AttributeError, OverflowError, ValueError),
the two stores disagreed (a ``run_at`` of 9999-12-31 stored on PostgreSQL, refused by
SQLite after the insert), and a bad task option was accepted at registration and then
failed every job of the task in the worker, classified ``invalid_output``. Now each is a
``treadle`` error at the call, and nothing is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.security.running import Running, finished
from treadle import Treadle
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    InvalidInput,
    RateLimited,
    TreadleError,
)
from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.retry import MAX_RETRY_DELAY, RetryPolicy


def _give(value: Any = None) -> Any:
    return value


def short(value: object) -> str:
    return repr(value)[:40]


BAD_TASK_OPTIONS: list[dict[str, Any]] = [
    {"name": "\ud800"}, {"name": "a\x00b"}, {"name": "x" * (50 << 20)}, {"name": 5},
    {"queue": "\ud800"}, {"queue": ""}, {"queue": 7},
    {"timeout": "5"}, {"timeout": math.nan}, {"timeout": math.inf}, {"timeout": True},
    {"priority": 2**40}, {"priority": "1"}, {"retries": 10**9},
    {"default_error_class": "bogus"}, {"retry_policy": "x"}, {"error_overrides": {"x": 1}},
    {"error_overrides": {ValueError: "permanent"}}, {"pass_context": "yes"},
    {"concurrency": ("user:\ud800{value}", 2)}, {"rate_limit": ("a\x00{value}", 1, 1.0)},
]


@pytest.mark.parametrize("options", BAD_TASK_OPTIONS, ids=short)
def test_task_options_no_job_could_carry_are_refused_at_registration(
    db_url: str, options: dict[str, Any]
) -> None:
    # Before: registered; every defer then failed, or (error class, policy, overrides)
    # every attempt failed in the worker as invalid_output with a traceback in its log.
    with Treadle(db_url) as app:
        with pytest.raises(ConfigurationError):
            app.task(**{"name": "t", **options})(_give)
        assert "t" not in app.tasks and not any(
            isinstance(n, str) and n.startswith("\ud800") for n in app.tasks)
        workflow_options = {k: v for k, v in options.items()
                            if k not in ("concurrency", "rate_limit", "pass_context")}
        if workflow_options:  # the options a workflow has too
            with pytest.raises(ConfigurationError):
                app.workflow(**{"name": "w", **workflow_options})(lambda ctx: None)
        assert app.list_jobs() == []


NOW = datetime.now(UTC)
BAD_START: list[dict[str, Any]] = [
    {"delay": math.nan}, {"delay": math.inf}, {"delay": 1e300}, {"delay": 1e12},
    {"delay": -1e12}, {"delay": -1}, {"delay": "5"}, {"delay": True},
    {"run_at": "2030-01-01T00:00:00Z"}, {"run_at": 5}, {"run_at": datetime(2030, 1, 1)},
    {"run_at": datetime.max.replace(tzinfo=UTC)}, {"run_at": datetime.min.replace(tzinfo=UTC)},
    {"run_at": datetime(1, 1, 1, tzinfo=UTC) + timedelta(hours=1)},
    {"queue": ""}, {"priority": math.nan},
]


@pytest.mark.parametrize("options", BAD_START, ids=short)
def test_defer_options_no_store_can_hold_are_refused_alike(
    db_url: str, options: dict[str, Any]
) -> None:
    # Before: ValueError/OverflowError/TypeError/AttributeError from the clock arithmetic;
    # run_at 9999-12-31 was stored by PostgreSQL and refused by SQLite after its insert.
    with Treadle(db_url) as app:
        task = app.task(name="give", retries=0)(_give)
        with pytest.raises(InvalidInput):
            task.configure(**options).defer(value=1)
        with pytest.raises(InvalidInput):
            app.defer("give", {"value": 1}, **options)
        assert app.list_jobs() == []
        # The bounds themselves are fine on both stores.
        late = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)  # SQLite: whole seconds
        job = task.configure(run_at=late).defer(value=1).job
        assert app.get_job(job.id).run_at == late


BAD_FIELDS: list[dict[str, Any]] = [
    {"kind": "bogus"}, {"kind": 3}, {"timeout": "5"}, {"timeout": True},
    {"parent_id": "1"}, {"parent_id": 2**70}, {"parent_id": -5}, {"parent_id": 1.5},
    {"parent_id": True}, {"run_at": "now"},
]


@pytest.mark.parametrize("fields", BAD_FIELDS, ids=short)
def test_job_requests_with_fields_of_the_wrong_kind_are_refused_alike(
    db_url: str, fields: dict[str, Any]
) -> None:
    # Before: AttributeError (kind), TypeError (timeout), and for parent_id a StoreError on
    # SQLite but ValueOutOfRange on PostgreSQL; timeout=True stored on SQLite only.
    with Treadle(db_url) as app:
        with pytest.raises(InvalidInput):
            app.enqueue([NewJob(task="give", **fields)])
        assert app.list_jobs() == []
        kind_by_value = NewJob(task="give", kind="task")  # type: ignore[arg-type]
        assert kind_by_value.kind.value == "task"


def test_calls_that_are_no_request_are_a_treadle_error(db_url: str) -> None:
    with Treadle(db_url) as app:
        task = app.task(name="give", retries=0)(_give)
        calls: list[Callable[[], object]] = [
            lambda: task.configure(bogus=1),
            lambda: app.defer("give", {"value": 1}, bogus=1),
            lambda: app.enqueue([{"task": "give"}]),  # type: ignore[list-item]
            lambda: app.enqueue("give"),  # type: ignore[arg-type]
            lambda: app.defer([], {}),  # type: ignore[arg-type]
            lambda: task.defer_many(5),  # type: ignore[arg-type]
            lambda: task.defer_many({"value": 1}),  # type: ignore[dict-item]
            lambda: app.set_schedule_paused([], True),  # type: ignore[arg-type]
        ]
        for call in calls:
            with pytest.raises(TreadleError):
                call()
        assert app.list_jobs() == []


@pytest.mark.parametrize("url", [
    "sqlite:///a\x00b.db", "sqlite:///\ud800.db", "sqlite:///ok.db?mode=\ud800",
    "postgresql://\ud800@127.0.0.1/x", "postgresql://postgres@127.0.0.1/x\x00y",
    "postgresql://postgres@127.0.0.1/x?connect_timeout=\n1",
])
def test_database_urls_that_are_not_text_are_a_configuration_error(url: str) -> None:
    # Before: ValueError / UnicodeEncodeError from the driver; PostgreSQL retried for 10 s.
    with pytest.raises(ConfigurationError, match="printable"):
        Treadle(url)


@pytest.mark.parametrize(("payload", "every"), [
    ({"value": "\ud800"}, 60), ({"value": float("nan")}, 60), ({"other": 1}, 60),
    ([1], 60), ({"value": 1}, "60"), ({"value": 1}, math.nan),
])
def test_schedules_whose_jobs_could_never_be_enqueued_register_nothing(
    db_url: str, payload: Any, every: Any
) -> None:
    # Before: registered; the scheduler then failed to enqueue at every tick and fire
    # time, logging, with nothing ever run (or a TypeError at registration).
    with Treadle(db_url) as app:
        with pytest.raises(ConfigurationError):
            app.periodic(every=every, payload=payload, name="p", retries=0)(_give)
        if every == 60:
            with pytest.raises(ConfigurationError):
                app.cron("* * * * *", payload=payload, name="c", retries=0)(_give)
        assert app.tasks == {} and app.crons == [] and app.periodics == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, "5", True])
def test_retry_after_that_is_no_delay_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        RateLimited(retry_after=bad)


@pytest.mark.parametrize("fields", [
    {"base": math.nan}, {"cap": math.inf}, {"factor": math.inf}, {"cap": 1e12},
    {"base": "1"},
])
def test_retry_policies_that_give_no_start_time_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**fields)


def test_an_enormous_retry_after_retries_the_job_within_a_year(db_url: str) -> None:
    # Before: now + 1e12 s overflowed in the worker; the job failed as invalid_output
    # ("the worker could not record this attempt's outcome") with its retries unused.
    with Treadle(db_url) as app:
        @app.task(name="slow_down", retries=2)
        def slow_down() -> None:
            raise RateLimited("far side says wait", retry_after=1e12)

        @app.task(name="bad_wait", retries=2)
        def bad_wait() -> None:
            raise RateLimited("nonsense", retry_after=math.inf)

        app.task(name="give", retries=0)(_give)
        with Running(app):
            waiting = app.defer("slow_down")
            bad = finished(app, app.defer("bad_wait").id)
            assert finished(app, app.defer("give", {"value": 7}).id).result == 7
        job = app.get_job(waiting.id)
        assert job.status is JobStatus.QUEUED and job.attempt == 1, job
        assert job.error is not None and job.error.error_class is ErrorClass.RATE_LIMITED
        assert job.run_at <= datetime.now(UTC) + timedelta(seconds=MAX_RETRY_DELAY + 60)
        assert bad.status is JobStatus.FAILED and bad.error is not None
        assert bad.error.error_class is ErrorClass.INVALID_INPUT
        assert "retry_after" in bad.error.message
