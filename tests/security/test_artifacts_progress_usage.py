"""Hostile input to artifacts, progress and usage from job code (ADR 0006, ADR 0013,
ADR 0022), both stores.

Before: an artifact's tenant or step with a lone surrogate raised the driver's
UnicodeEncodeError, and one with NUL was stored by SQLite (PostgreSQL refuses NUL); a
job id given as text was stored by SQLite; a looked-up name with a surrogate, a byte
range that is no offset, a path too long to stat or a meta that is no dict raised
OSError, ValueError or TypeError. ``ctx.progress(2**2000)`` and
``ctx.record_usage(cpu_seconds=10**400)`` (documented as clamped, never raised) raised
OverflowError, failing the job as ``transient``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from treadle import JobContext, JobStatus, Treadle
from treadle.artifacts import ArtifactService
from treadle.core.errors import ErrorClass, InvalidInput
from treadle.sandbox import Limits
from treadle.testing import run_worker


def test_artifact_owners_and_lookups_no_store_can_hold_are_refused_alike(
    db_url: str, tmp_path: Path
) -> None:
    with Treadle(db_url, artifacts=f"file://{tmp_path}/objects") as app:
        app.task(name="t")(lambda: None)
        job_id = app.defer("t").id
        arts: ArtifactService = app.artifacts
        calls: list[Callable[[], object]] = [
            lambda: arts.put(job_id, "a", b"x", tenant="\ud800"),
            lambda: arts.put(job_id, "a", b"x", tenant="a\x00b"),
            lambda: arts.put(job_id, "a", b"x", tenant="default", step="\ud800"),
            lambda: arts.put(job_id, "a", b"x", tenant="default", step="s\x00"),
            lambda: arts.put(str(job_id), "a", b"x", tenant="default"),  # type: ignore[arg-type]
            lambda: arts.put(2**70, "a", b"x", tenant="default"),
            lambda: arts.put(job_id, "a", b"x", tenant="default", meta=[1]),  # type: ignore[arg-type]
            lambda: arts.put(job_id, "a", "/tmp/" + "a" * 100_000, tenant="default"),
            lambda: arts.put(job_id, "a", "/tmp/a\x00b", tenant="default"),
            lambda: arts.reuse(job_id, "b", tenant="default", like="\ud800"),
            lambda: arts.reuse(job_id, "b", tenant="a\x00"),
            lambda: arts.by_name(job_id, "\ud800"),
            lambda: arts.by_name(job_id, 5),  # type: ignore[arg-type]
            lambda: arts.get(1, tenant="\ud800"),
            lambda: arts.for_job(job_id, tenant="a\x00"),
        ]
        for call in calls:
            with pytest.raises(InvalidInput):
                call()
        assert arts.for_job(job_id) == []  # nothing recorded
        ok = arts.put(job_id, "ok.txt", b"hello", tenant="default")
        for start, end in ((-5, 2), (2**70, 2**71), ("1", None)):
            with pytest.raises(InvalidInput):
                list(arts.open(ok, start, end))  # type: ignore[arg-type]
        for target in (tmp_path, tmp_path / "a\x00b"):
            with pytest.raises(InvalidInput):
                arts.download(ok, target)
        assert arts.read_bytes(ok) == b"hello"


def test_numbers_past_a_float_fail_progress_clearly_and_are_clamped_in_usage(
    db_url: str,
) -> None:
    with Treadle(db_url) as app:
        @app.task(name="huge_progress", retries=2, pass_context=True)
        def huge_progress(ctx: JobContext) -> None:
            ctx.progress(2**2000, 2**3000)

        @app.task(name="huge_usage", retries=0, pass_context=True)
        def huge_usage(ctx: JobContext) -> str:
            ctx.record_usage(cpu_seconds=10**400, peak_memory_bytes=10**400,
                             tokens_in=10**400, cost_usd=10**400)
            return "recorded"

        with run_worker(app):
            progress = app.defer("huge_progress").wait(20)
            usage = app.defer("huge_usage").wait(20)
        assert progress.status is JobStatus.FAILED and progress.error is not None
        assert progress.error.error_class is ErrorClass.INVALID_INPUT, progress.error
        assert progress.attempt == 1  # not retried as if the store were down
        assert usage.status is JobStatus.SUCCEEDED, usage.error
        assert usage.result == "recorded"


@pytest.mark.parametrize("field", ["timeout", "cpu_seconds", "memory_mb"])
def test_sandbox_limits_past_a_float_are_refused(field: str) -> None:
    kwargs: dict[str, Any] = {field: 10**400}
    with pytest.raises(InvalidInput):
        Limits(**kwargs)
