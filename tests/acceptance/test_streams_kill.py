"""A worker SIGKILLed mid-stream leaves what it emitted; the next attempt is marked (ADR 0011)."""

from __future__ import annotations

import os
import signal

from tests.acceptance.conftest import Workers, wait_until
from treadle import JobStatus, Treadle
from treadle.streams.repo import StreamRepo


def test_kill_9_mid_stream_keeps_the_items_and_marks_the_next_attempt(
    db_url: str, workers: Workers
) -> None:
    app = Treadle(db_url)
    from tests.acceptance.app import streamy_first_attempt

    handle = app.enqueue([streamy_first_attempt.new_job({"items": 50})])[0]
    repo = StreamRepo(app.store)
    victim = workers.start("--lease-seconds", "2")
    wait_until(lambda: len(repo.read(handle.id, 0)) == 50, 30, "the first attempt's items")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.start("--lease-seconds", "2")
    done = handle.wait(timeout=60)
    assert done.status is JobStatus.SUCCEEDED and done.result == "attempt2"
    items = [e.item for e in handle.stream() if e.item is not None]
    assert [i.seq for i in items] == list(range(1, 102))
    assert [(i.attempt, i.data["i"]) for i in items[:100]] == (
        [(1, n) for n in range(50)] + [(2, n) for n in range(50)])
    assert items[-1].kind == "progress" and items[-1].attempt == 2
    app.close()
