"""Live job streams in the library: emit, progress, logs, caps, refusals, handle.stream()."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.support.aio import run_async
from treadle import RetryPolicy
from treadle.app import Treadle
from treadle.context import JobContext
from treadle.core.errors import Transient
from treadle.core.lifecycle import JobStatus
from treadle.streams.model import Pending, StreamLimits
from treadle.streams.repo import StreamRepo
from treadle.testing import run_worker


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


def test_emit_progress_and_logs_share_one_numbered_stream(app: Treadle) -> None:
    @app.task(name="work", pass_context=True, retries=0)
    def work(ctx: JobContext) -> str:
        ctx.log("starting")
        for i in range(3):
            ctx.emit("chunk", {"i": i})
            ctx.progress(i + 1, 3, message=f"step {i}")
        return "ok"

    h = work.defer()
    with run_worker(app):
        assert h.wait(30).status is JobStatus.SUCCEEDED
    events = list(h.stream())
    assert events[0].event == "state"
    assert events[-1].event == "end" and events[-1].job is not None
    assert events[-1].job.result == "ok"
    items = [e.item for e in events if e.item is not None]
    assert [(i.seq, i.kind) for i in items] == [
        (1, "log"), (2, "chunk"), (3, "progress"), (4, "chunk"), (5, "progress"),
        (6, "chunk"), (7, "progress")]
    assert items[0].data == "starting"
    assert items[-1].data == {"done": 3, "total": 3, "message": "step 2"}
    # resume after any position
    assert [e.item.seq for e in h.stream(after=5) if e.item is not None] == [6, 7]

    async def collect() -> list[int]:
        return [e.item.seq async for e in h.stream(after=4) if e.item is not None]

    assert run_async(collect()) == [5, 6, 7]


def test_each_attempt_marks_its_items(app: Treadle) -> None:
    @app.task(name="flaky", pass_context=True, retries=2, retry_policy=RetryPolicy(base=0, cap=0))
    def flaky(ctx: JobContext) -> int:
        ctx.emit("try", {"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise Transient("first attempt fails")
        return ctx.attempt

    h = flaky.defer()
    with run_worker(app):
        assert h.wait(30).status is JobStatus.SUCCEEDED
    items = StreamRepo(app.store).read(h.id, 0)
    assert [(i.attempt, i.data) for i in items if i.kind == "try"] == [
        (1, {"attempt": 1}), (2, {"attempt": 2})]


_deep: list[object] = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]


@pytest.mark.parametrize(("data", "error_class"), [
    ("lone \ud800 surrogate", "invalid_output"),
    ({"nul": "a\x00b"}, "invalid_output"),
    ("x" * 200_000, "resource_exhausted"),
    (_deep, None),
])
def test_hostile_items_are_refused_with_a_classified_error(
    app: Treadle, data: object, error_class: str | None
) -> None:
    @app.task(name="hostile", pass_context=True, retries=0)
    def hostile(ctx: JobContext) -> str:
        ctx.emit("bad", data)
        return "emitted"

    h = hostile.defer()
    with run_worker(app):
        job = h.wait(30)
    if error_class is None:
        assert job.status is JobStatus.SUCCEEDED
        return
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_class.value == error_class
    # the worker carried on: another job of the same worker run succeeds
    h2 = hostile.defer()
    assert h2.id != h.id


def test_hostile_log_lines_are_cleaned_not_refused(app: Treadle) -> None:
    @app.task(name="noisy", pass_context=True, retries=0)
    def noisy(ctx: JobContext) -> None:
        ctx.log("a\x00b\ud800c" + "y" * 100_000)

    h = noisy.defer()
    with run_worker(app):
        assert h.wait(30).status is JobStatus.SUCCEEDED
    (item,) = StreamRepo(app.store).read(h.id, 0)
    assert item.data.startswith("a\ufffdb\ufffdc") and len(item.data) < 8_300
    assert item.data.endswith("more characters not stored]")


def test_bad_kinds_are_refused(app: Treadle) -> None:
    @app.task(name="kinds", pass_context=True, retries=0)
    def kinds(ctx: JobContext, kind: str) -> None:
        ctx.emit(kind, 1)

    for kind in ("log", "end", "", "x" * 100, "1abc"):
        h = kinds.defer(kind=kind)
        with run_worker(app):
            job = h.wait(30)
        assert job.error is not None and job.error.error_class.value == "invalid_input"


def test_oldest_items_are_trimmed_with_a_marker(app: Treadle) -> None:
    @app.task(name="host", retries=0)
    def host() -> None:
        return None

    h = host.defer()
    with run_worker(app):
        h.wait(30)
    repo = StreamRepo(app.store, StreamLimits(max_items=5))
    for batch in range(3):
        repo.append({h.id: [Pending(1, "n", str(batch * 4 + i), 0.0) for i in range(4)]})
    head = repo.heads([h.id])[h.id]
    assert (head.last_seq, head.trimmed_through) == (12, 7)
    events = list(h.stream())
    items = [e.item for e in events if e.item is not None]
    assert items[0].kind == "trimmed" and items[0].data["through"] == 7
    assert [i.seq for i in items[1:]] == [8, 9, 10, 11, 12]
    assert [i.data for i in items[1:]] == [7, 8, 9, 10, 11]


def test_treadle_jobs_watch_follows_a_job(app: Treadle, db_url: str) -> None:
    from typer.testing import CliRunner

    from treadle.cli import app as cli

    @app.task(name="watched", pass_context=True, retries=0)
    def watched(ctx: JobContext) -> None:
        ctx.log("hello \x1b[31mred")
        ctx.progress(1, 2)

    h = watched.defer()
    with run_worker(app):
        h.wait(30)
    result = CliRunner().invoke(cli, ["jobs", "watch", str(h.id), "--json", "--db", db_url])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [e["event"] for e in lines] == ["state", "item", "item", "end"]
    assert lines[-1]["job"]["status"] == "succeeded"
    live = CliRunner().invoke(cli, ["jobs", "watch", str(h.id), "--db", db_url])
    assert live.exit_code == 0, live.output
    assert "hello ?[31mred" in live.output and "\x1b[31m" not in live.output
    missing = CliRunner().invoke(cli, ["jobs", "watch", "999999", "--db", db_url])
    assert missing.exit_code != 0


def test_the_hub_ends_listeners_of_a_deleted_job(sqlite_url: str) -> None:
    import sqlite3

    from treadle.store.sqlite.store import sqlite_path
    from treadle.streams.hub import StreamHub
    from treadle.testing import migrated

    app = Treadle(migrated(sqlite_url))

    @app.task(name="idle")
    def idle() -> None:
        return None

    h = idle.defer()
    hub = StreamHub(app.store)

    async def follow() -> object:
        sub = await asyncio.to_thread(hub.subscribe, h.id, asyncio.get_running_loop())
        conn = sqlite3.connect(sqlite_path(sqlite_url))
        conn.execute("PRAGMA foreign_keys=ON")
        with conn:
            conn.execute("DELETE FROM treadle_jobs WHERE id = ?", (h.id,))
        conn.close()
        return await asyncio.wait_for(sub.queue.get(), 10)

    try:
        assert run_async(follow()) is None
        assert hub.listeners() == 0
    finally:
        hub.close()
        app.close()


def test_a_cli_command_run_in_process_closes_the_app_it_opened(db_url: str) -> None:
    """``treadle jobs watch`` on a job that does not exist fails, and the store it opened
    is closed all the same (no pool left to be collected later in its own thread)."""
    from typer.testing import CliRunner

    import treadle.cli.common as common
    from treadle.cli import app as cli

    opened: list[Treadle] = []
    real = common._load_app

    def spy(spec: str | None, db: str | None) -> Treadle:
        app = real(spec, db)
        opened.append(app)
        return app

    common._load_app = spy
    try:
        missing = CliRunner().invoke(cli, ["jobs", "watch", "999999", "--db", db_url])
    finally:
        common._load_app = real
    assert missing.exit_code != 0
    assert len(opened) == 1 and opened[0]._closed
