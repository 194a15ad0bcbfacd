"""On PostgreSQL a claim sends no notification; the stream hub still hands the
queued -> running change to listeners promptly (ADR 0020), not only at the next flush
or its 0.5 s safety tick."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import pytest

from tests.support.aio import run_async
from treadle import Treadle
from treadle.streams.hub import QUEUED_PACE, StreamHub
from treadle.streams.repo import Head
from treadle.testing import migrated


@pytest.fixture
def app(pg_url: str) -> Iterator[Treadle]:
    a = Treadle(migrated(pg_url))
    a.migrate()

    @a.task(name="idle")
    def idle() -> None:
        return None

    yield a
    a.close()


def _claim_latency(app: Treadle, hub: StreamHub) -> float:
    job = app.defer("idle")

    async def follow() -> float:
        sub = await asyncio.to_thread(hub.subscribe, job.id, asyncio.get_running_loop())
        assert sub.start.status == "queued"
        # Claim just after a round ended: the worst moment for a hub that waits for
        # the safety tick (the claim notifies nobody).
        rounds = hub.stats.rounds
        while hub.stats.rounds == rounds:
            await asyncio.sleep(0.001)
        claimed = await asyncio.to_thread(app.store.claim, queues=None, worker="w",
                                          limit=1, lease_seconds=30)
        assert [j.id for j in claimed] == [job.id]
        start = time.monotonic()
        while True:
            event = await asyncio.wait_for(sub.queue.get(), 10)
            if isinstance(event, Head) and event.status == "running":
                return time.monotonic() - start

    try:
        return run_async(follow())
    finally:
        app.cancel(job.id)


def test_a_claim_reaches_listeners_before_the_safety_tick(app: Treadle) -> None:
    hub = StreamHub(app.store, safety_interval=0.5)
    try:
        latencies = [_claim_latency(app, hub) for _ in range(5)]
    finally:
        hub.close()
    # 50 ms pacing plus one query, against 500 ms without it; the machine is shared,
    # so the bound leaves room (the median of five).
    assert statistics.median(latencies) < 0.3, latencies


def test_the_pace_backs_off_while_nothing_changes(app: Treadle) -> None:
    hub = StreamHub(app.store, safety_interval=0.5)
    hub._stop.set()  # no thread: the test drives pace() alone
    assert hub.pace() == 0.5  # nothing followed
    job = app.defer("idle")
    loop = asyncio.new_event_loop()
    try:
        hub.subscribe(job.id, loop)
        paces = [hub.pace() for _ in range(8)]
        assert paces[0] == QUEUED_PACE and paces == sorted(paces) and paces[-1] == 0.5
        hub.subscribe(job.id, loop)  # a new listener: look soon again
        assert hub.pace() == QUEUED_PACE
        app.cancel(job.id)
        hub._round([job.id])  # the followed job is no longer queued
        assert hub.pace() == 0.5
    finally:
        loop.close()
