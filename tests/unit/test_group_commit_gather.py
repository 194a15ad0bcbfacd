"""The committer's gathering under load (ADR 0032): threads it answered together come
back together, into one batch, not two alternating half-size ones; the wait is bounded,
and neither a lone caller nor futures (the HTTP API) ever meet it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from treadle.core.job import Enqueued, NewJob
from treadle.store.groupcommit import GroupCommitter

WAIT = 30.0
JOB = NewJob(task="t")


def _wait_for(what: Callable[[], bool]) -> None:
    """Until ``what`` holds (another thread's progress), failing after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class Recorder:
    """A commit that records who committed how many, and can be held on its first call."""

    def __init__(self, hold_first: bool = False, io_seconds: float = 0.0) -> None:
        self.io_seconds = io_seconds  # a commit's flush, simulated
        self.calls: list[tuple[str, int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, batch: Any) -> list[Any]:
        self.calls.append((threading.current_thread().name, len(batch)))
        self.entered.set()
        assert self.release.wait(WAIT)
        if self.io_seconds:
            time.sleep(self.io_seconds)
        at = datetime.now(UTC)
        return [[Enqueued.new(nj, i, at) for i, nj in enumerate(s.jobs)] for s in batch]


def test_callers_answered_together_are_committed_together_again() -> None:
    commit = Recorder(hold_first=True)
    gc = GroupCommitter("t", commit, gather=WAIT)  # wait as long as it takes
    try:
        first = threading.Thread(target=gc.enqueue, args=([JOB],), name="first")
        first.start()
        assert commit.entered.wait(WAIT)  # inline, held: the others queue
        again = threading.Barrier(2)

        def producer() -> None:
            gc.enqueue([JOB])
            again.wait(WAIT)  # answered; now both come back, one after the other
            gc.enqueue([JOB])

        producers = [threading.Thread(target=producer) for _ in range(2)]
        for t in producers:
            t.start()
        _wait_for(lambda: len(gc._pending) == 2)
        commit.release.set()
        for t in [first, *producers]:
            t.join(WAIT)
        assert commit.calls[0] == ("first", 1)
        # Both first submissions in one batch, and both second ones in one batch too:
        # neither came back to find the committer idle and committed alone, inline.
        assert [n for _, n in commit.calls[1:]] == [2, 2]
        assert all(name.startswith("treadle-group-commit-t") for name, _ in commit.calls[1:])
    finally:
        gc.close()


def test_a_gather_gives_up_after_its_time_when_callers_do_not_come_back() -> None:
    commit = Recorder(hold_first=True)
    gc = GroupCommitter("t", commit, gather=0.01)
    try:
        first = threading.Thread(target=gc.enqueue, args=([JOB],), name="first")
        first.start()
        assert commit.entered.wait(WAIT)
        others = [threading.Thread(target=gc.enqueue, args=([JOB],)) for _ in range(2)]
        for t in others:
            t.start()
        _wait_for(lambda: len(gc._pending) == 2)
        commit.release.set()
        for t in [first, *others]:
            t.join(WAIT)
        # Two answered by the committer, which now waits for two; only one comes.
        assert len(gc.enqueue([JOB])) == 1
        assert [n for _, n in commit.calls] == [1, 2, 1]
    finally:
        gc.close()


def test_a_sequential_caller_always_commits_on_its_own_thread() -> None:
    commit = Recorder()
    gc = GroupCommitter("t", commit, gather=WAIT)
    try:
        for _ in range(20):
            gc.enqueue([JOB])
        me = threading.current_thread().name
        assert commit.calls == [(me, 1)] * 20
        assert not gc._threads  # no committer thread was ever needed
    finally:
        gc.close()


def test_answered_futures_leave_nothing_to_gather() -> None:
    commit = Recorder()
    gc = GroupCommitter("t", commit, gather=WAIT)
    try:
        assert len(gc.submit([JOB]).result(WAIT)) == 1
        _wait_for(lambda: gc._in_flight == 0)
        assert gc._expect == 0
        gc.enqueue([JOB])  # the committer is idle: inline, at once
        assert commit.calls[-1] == (threading.current_thread().name, 1)
    finally:
        gc.close()


def test_closing_ends_a_gather_at_once() -> None:
    commit = Recorder(hold_first=True)
    gc = GroupCommitter("t", commit, gather=3600.0)
    first = threading.Thread(target=gc.enqueue, args=([JOB],))
    first.start()
    assert commit.entered.wait(WAIT)
    others = [threading.Thread(target=gc.enqueue, args=([JOB],)) for _ in range(2)]
    for t in others:
        t.start()
    _wait_for(lambda: len(gc._pending) == 2)
    commit.release.set()
    for t in [first, *others]:
        t.join(WAIT)
    _wait_for(lambda: gc._expect == 2 or gc._in_flight == 0)
    started = time.monotonic()
    gc.close(timeout=WAIT)
    assert time.monotonic() - started < WAIT / 2
    assert not any(t.is_alive() for t in gc._threads)


def test_many_threads_and_futures_are_all_answered() -> None:
    """No lost wake-up: the committer is woken only when it can act (ADR 0032), yet
    every submission, blocking or a future, is committed and answered."""
    commit = Recorder(io_seconds=0.0003)  # callers arrive while commits are in flight
    gc = GroupCommitter("t", commit)  # the default gather
    errors: list[BaseException] = []

    def blocking() -> None:
        try:
            for _ in range(200):
                assert len(gc.enqueue([JOB, JOB])) == 2
        except BaseException as exc:
            errors.append(exc)

    def futures() -> None:
        try:
            for _ in range(100):
                assert len(gc.submit([JOB]).result(WAIT)) == 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=blocking) for _ in range(8)]
    threads += [threading.Thread(target=futures) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert not errors and not any(t.is_alive() for t in threads)
        # Each call in calls is (thread, submissions); every job was committed once.
        assert sum(n for _, n in commit.calls) == 8 * 200 + 2 * 100
        assert len(commit.calls) < 8 * 200 + 2 * 100  # and they did share commits
    finally:
        gc.close()
