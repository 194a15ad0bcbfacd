"""A busy PostgreSQL claimer skips the claim plan's round trip while the last plan had
nothing to share out (ADR 0017): a second tenant waits at most the plan's time to live,
and keyed work is planned for as soon as the fast path finds nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from treadle.core.job import NewJob
from treadle.store.postgres.claiming import _PLAN_TTL
from treadle.store.postgres.store import PostgresStore
from treadle.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(pg_url: str, clock: ManualClock) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url, clock=clock)
    yield s
    s.close()


def _claim(store: PostgresStore, n: int) -> list[str]:
    return [j.tenant for j in store.claim(queues=None, worker="w", limit=n, lease_seconds=60)]


def test_a_second_tenant_gets_its_share_once_the_plan_is_read_again(
    store: PostgresStore, clock: ManualClock
) -> None:
    store.enqueue([NewJob(task="t", tenant="a") for _ in range(20)])
    assert _claim(store, 4) == ["a"] * 4  # one tenant: the plan had nothing to share out
    store.enqueue([NewJob(task="t", tenant="b") for _ in range(20)])
    # Within the plan's time to live the fast path runs: oldest first, tenant a.
    assert _claim(store, 4) == ["a"] * 4
    clock.advance(_PLAN_TTL + 0.01)
    # Planned again: tenant a holds 8 running jobs, b none, so b gets every slot.
    assert _claim(store, 4) == ["b"] * 4


def test_keyed_work_is_claimed_as_soon_as_the_fast_path_finds_nothing(
    store: PostgresStore,
) -> None:
    store.enqueue([NewJob(task="t") for _ in range(2)])
    assert len(_claim(store, 2)) == 2  # a trivial plan, remembered
    keyed = store.enqueue([NewJob(task="t", concurrency_key="k", concurrency_limit=1)])[0]
    got = store.claim(queues=None, worker="w", limit=2, lease_seconds=60)
    assert [j.id for j in got] == [keyed.job.id]  # no wait for the plan's time to live


def test_work_that_wakes_an_idle_claimer_is_claimed_without_a_plan(
    store: PostgresStore, clock: ManualClock
) -> None:
    # An idle claimer's plan found nothing at all: nothing to share out either.
    assert _claim(store, 4) == []
    store.enqueue([NewJob(task="t", tenant="a") for _ in range(4)])
    store.enqueue([NewJob(task="t", tenant="b") for _ in range(4)])
    # Within the plan's time to live the fast path claims (oldest first: tenant a), one
    # round trip; a plan would have shared the four slots between a and b.
    assert _claim(store, 4) == ["a"] * 4
    clock.advance(_PLAN_TTL + 0.01)
    store.enqueue([NewJob(task="t", tenant="a") for _ in range(4)])
    # Planned again once it expired: a holds 4 running jobs, b none, so b gets them all.
    assert _claim(store, 4) == ["b"] * 4
