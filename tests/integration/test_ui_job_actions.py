"""The control plane's job actions judge "done" by what the store did, not by a race."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.support.waiting import until
from treadle import JobStatus, Permanent, Treadle
from treadle.testing import run_worker
from treadle.ui.pages_jobs import _apply
from treadle.ui.session import SessionUser
from treadle.ui.web import UIContext

USER = SessionUser(tenant="default", scopes=frozenset({"submit", "read"}), key_id="k",
                   sid="s", expires=0)


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


def test_retry_counts_as_done_when_the_job_runs_and_fails_again_before_it_is_read(
    app: Treadle,
) -> None:
    @app.task(name="boom", retries=0)
    def boom() -> None:
        raise Permanent("kaput")

    job = boom.defer().job
    real_retry = app.retry

    def retry_then_lose_the_race(job_id: int, *, tenant: str | None = None) -> Any:
        real_retry(job_id, tenant=tenant)
        # The worker takes the retried job and fails it again before the action reads
        # it back: the status it sees is 'failed' both before and after.
        until(lambda: app.get_job(job_id).attempt == 2
              and app.get_job(job_id).status is JobStatus.FAILED, "the re-run")
        return app.get_job(job_id)

    app.retry = retry_then_lose_the_race  # type: ignore[method-assign]
    ctx = cast(UIContext, SimpleNamespace(treadle=app, store=app.store))
    with run_worker(app):
        until(lambda: app.get_job(job.id).status is JobStatus.FAILED, "the first failure")
        done, refused = _apply(ctx, USER, "retry", [job.id])
    assert (done, refused) == (1, [])


def test_retry_of_a_job_that_cannot_be_retried_is_refused(app: Treadle) -> None:
    @app.task(name="later")
    def later() -> None: ...

    job = later.defer().job  # queued: not failed, nothing to retry
    ctx = cast(UIContext, SimpleNamespace(treadle=app, store=app.store))
    done, refused = _apply(ctx, USER, "retry", [job.id])
    assert (done, refused) == (0, [job.id])
    assert app.get_job(job.id).status is JobStatus.QUEUED
