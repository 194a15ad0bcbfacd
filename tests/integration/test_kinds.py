"""Job kinds as plug-ins (ADR 0008): registration, claim by kind, transactions, SQL tracks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from treadle import JobStatus, Treadle
from treadle.context import JobContext
from treadle.core.errors import ConfigurationError, JobNotFound, StoreError, ValueOutOfRange
from treadle.core.job import Job, JobKind, NewJob
from treadle.dynamic import DynamicWorkers
from treadle.executors.base import Executor, Runnable
from treadle.kinds import JobKindPlugin, use_builtin
from treadle.store.extension import ExtensionSql
from treadle.testing import run_worker


class _Echo:
    def prepare(self, job: Job) -> Runnable:
        def call(ctx: JobContext) -> Any:
            return {"echo": job.payload}

        return Runnable(call=call)


class MediaKind(JobKindPlugin):
    """A minimal plug-in: an executor and nothing else."""

    kind = JobKind.MEDIA
    name = "media"

    def __init__(self) -> None:
        self.ready = False
        self._executor = _Echo()

    def setup(self, app: Treadle) -> None:
        self.ready = True

    def executor(self, app: Treadle) -> Executor:
        return self._executor


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


def test_use_is_typed_idempotent_and_validated(app: Treadle) -> None:
    media = MediaKind()
    assert app.use(media) is media and media.ready
    assert app.use(media) is media  # the same object again: nothing changes
    assert app.plugin(MediaKind) is media and app.plugin_for(JobKind.MEDIA) is media
    with pytest.raises(ConfigurationError, match="already served"):
        app.use(MediaKind())
    with pytest.raises(ConfigurationError, match="JobKindPlugin"):
        app.use(object())  # type: ignore[type-var]

    class Bad(MediaKind):
        kind = JobKind.TASK

    with pytest.raises(ConfigurationError, match="built in"):
        app.use(Bad())
    with pytest.raises(ConfigurationError, match="not registered"):
        app.plugin(DynamicWorkers)
    assert set(app.executors()) == {JobKind.TASK, JobKind.MEDIA}
    use_builtin(app)
    assert set(app.executors()) == {JobKind.TASK, JobKind.MEDIA, JobKind.CODE, JobKind.WORKFLOW,
                                    JobKind.AGENT}


def test_workers_claim_only_the_kinds_they_can_run(app: Treadle) -> None:
    @app.task(name="plain", retries=0)
    def plain() -> str:
        return "ok"

    media = app.enqueue([NewJob(task="clip", kind=JobKind.MEDIA, payload={"n": 1})])[0]
    task = plain.defer()
    with run_worker(app, burst=True) as worker:
        assert task.wait(20).result == "ok"
    assert worker.kinds == ("task",)
    # No worker could run it: it waits, instead of failing for a missing executor.
    assert app.get_job(media.id).status is JobStatus.QUEUED
    app.use(MediaKind())
    with run_worker(app):
        assert media.wait(20).result == {"echo": {"n": 1}}
    # A claim without a kind filter (None) still takes every kind.
    app.enqueue([NewJob(task="clip", kind=JobKind.MEDIA)])
    claimed = app.store.claim(queues=None, worker="w", limit=5, lease_seconds=30)
    assert [j.kind for j in claimed] == [JobKind.MEDIA]


def test_transaction_writes_rows_and_jobs_together_or_not_at_all(app: Treadle) -> None:
    app.use(DynamicWorkers())
    app.migrate()
    sql = ExtensionSql.of_package(app.store, "treadle.dynamic.sql")
    kv = {"tenant": "t", "key": "k", "value": "v", "now": sql.ts_in(sql.now())}
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        sql.run("kv_put", kv, tx=tx)
        tx.enqueue([NewJob(task="never")])
        raise RuntimeError("roll back both")
    assert sql.run("kv_get", {"tenant": "t", "key": "k"}) == []
    assert app.list_jobs() == []
    with app.store.transaction() as tx:
        sql.run("kv_put", kv, tx=tx)
        (done,) = tx.enqueue([NewJob(task="after")])
    assert [r["value"] for r in sql.run("kv_get", {"tenant": "t", "key": "k"})] == ["v"]
    assert app.get_job(done.job.id).status is JobStatus.QUEUED


def test_plugin_migrations_are_tracked_and_checked(app: Treadle) -> None:
    app.use(DynamicWorkers())
    app.check_schema()  # the test database is migrated for the built-in kinds
    assert app.store.migrate_plugin("dynamic", "treadle.dynamic.sql") == []
    # Another plug-in name is its own track, numbered from 1: behind until migrated.
    with pytest.raises(ConfigurationError, match="treadle migrate"):
        app.store.check_plugin_schema("dynamic_copy", "treadle.dynamic.sql")
    assert app.store.migrate_plugin("dynamic_copy", "treadle.dynamic.sql") == [1]
    app.store.check_plugin_schema("dynamic_copy", "treadle.dynamic.sql")


def test_driver_errors_are_translated_inside_the_stores(app: Treadle) -> None:
    execute = app.store.execute  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="database error"):
        execute("SELECT * FROM treadle_no_such_table", {}, write=False)
    with pytest.raises(StoreError), app.store.transaction() as tx:
        tx.execute("INSERT INTO treadle_no_such_table VALUES (1)", {})
    with pytest.raises((ValueOutOfRange, JobNotFound)):  # SQLite cannot bind it at all
        app.get_job(2**70)
