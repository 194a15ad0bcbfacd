"""A claim commits without waiting for the disk (ADR 0030), and nothing else does.

A write transaction that runs on the connection after a claim flushes (a completion or
an enqueue must never inherit the relaxed setting), even when the claim failed. A
claim a crash made the database forget is harmless: the job is queued again, and on
PostgreSQL, where workers outlive a server crash, the token the forgotten claim
handed out is never handed out again, so its holder stays fenced out. (On SQLite the
only crash that forgets a commit, the host's, takes every worker down with it.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from treadle.core.errors import StoreError
from treadle.core.job import NewJob
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.store import open_store
from treadle.store.base import Store
from treadle.store.postgres.store import PostgresStore
from treadle.store.sqlite.store import SQLiteStore

_FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def _flush_setting(store: Store) -> str:
    """What this thread's next write transaction does at commit (SQLite: this thread's
    connection, read inside such a transaction; PostgreSQL: the pool's only
    connection)."""
    if isinstance(store, SQLiteStore):
        with store.transaction():
            return str(store._conn().execute("PRAGMA synchronous").fetchone()[0])
    assert isinstance(store, PostgresStore)
    rows = store.execute("SELECT current_setting('synchronous_commit') AS v", {},
                         write=False)
    return str(rows[0]["v"])


def test_a_write_after_a_claim_on_the_same_connection_flushes(db_url: str) -> None:
    # One pooled PostgreSQL connection, so the read below runs where the claim ran.
    store = PostgresStore(db_url, pool_size=1) if db_url.startswith("postgres") \
        else open_store(db_url)
    try:
        before = _flush_setting(store)
        store.enqueue([NewJob(task="t") for _ in range(3)])
        assert len(store.claim(queues=None, worker="w", limit=3, lease_seconds=60)) == 3
        assert len(store.claim(queues=None, worker="w", limit=3, lease_seconds=60)) == 0
        store.enqueue([NewJob(task="t", queue="q")])
        assert len(store.claim(queues=["q"], worker="w", limit=1, lease_seconds=60)) == 1
        assert _flush_setting(store) == before
        assert before in ("on", str(_FULL))
    finally:
        store.close()


def test_a_claim_that_fails_leaves_the_next_write_flushing(sqlite_url: str) -> None:
    from treadle.testing import migrated

    store = SQLiteStore(migrated(sqlite_url))
    try:
        store.enqueue([NewJob(task="t")])
        # A claim the database refuses halfway (the queues table it reads is gone): the
        # error reaches the caller, and the connection is back to synchronous=FULL.
        store._conn().execute("ALTER TABLE treadle_queues RENAME TO treadle_queues_gone")
        with pytest.raises(StoreError, match="treadle_queues"):
            store.claim(queues=None, worker="w", limit=1, lease_seconds=60)
        assert not store._conn().in_transaction
        assert _flush_setting(store) == str(_FULL)
    finally:
        store.close()


def test_sqlite_claims_in_a_row_switch_the_setting_once_and_writes_switch_it_back(
    sqlite_url: str,
) -> None:
    from treadle.testing import migrated

    store = SQLiteStore(migrated(sqlite_url))
    try:
        store.enqueue([NewJob(task="t") for _ in range(3)])
        seen: list[str] = []
        store._conn().set_trace_callback(seen.append)
        claimed = [store.claim(queues=None, worker="w", limit=1, lease_seconds=60)[0]
                   for _ in range(3)]
        switches = [s for s in seen if s.startswith("PRAGMA synchronous")]
        assert switches == ["PRAGMA synchronous=NORMAL"]  # once, before the first claim
        seen.clear()
        store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w")
                        for j in claimed])
        begin = seen.index("BEGIN IMMEDIATE")
        assert "PRAGMA synchronous=FULL" in seen[:begin]
    finally:
        store.close()


def test_a_claim_the_server_forgot_is_claimed_again_and_its_holder_fenced_out(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url)
    try:
        job = store.enqueue([NewJob(task="t", max_attempts=3)])[0].job
        first = store.claim(queues=None, worker="w1", limit=1, lease_seconds=60)[0]
        # What a server crash that lost the claim's unflushed commit leaves behind: the
        # row as it was before the claim (queued, previous attempt and token), without
        # the claim's event, lost in the same transaction.
        store.execute("DELETE FROM treadle_events WHERE job_id = %(id)s AND reason = 'claimed'",
                      {"id": job.id}, write=True)
        store.execute(
            "UPDATE treadle_jobs SET status = 'queued', attempt = 0, lease_token = 0, "
            "lease_owner = NULL, lease_expires_at = NULL, started_at = NULL "
            "WHERE id = %(id)s", {"id": job.id}, write=True)
        second = store.claim(queues=None, worker="w2", limit=1, lease_seconds=60)[0]
        assert second.id == job.id and second.attempt == first.attempt == 1
        assert second.lease_token != first.lease_token
        # The first holder, still running, is fenced out of heartbeats and its outcome.
        beat = store.heartbeat(worker="w1", leases=[(job.id, first.lease_token)],
                               lease_seconds=60)
        assert job.id in beat.lost
        assert store.complete([Outcome(job.id, first.lease_token, OutcomeKind.SUCCEEDED,
                                       "w1", result="stale")]) == [False]
        assert store.complete([Outcome(job.id, second.lease_token, OutcomeKind.SUCCEEDED,
                                       "w2", result="kept")]) == [True]
        assert store.get_job(job.id).result == "kept"
    finally:
        store.close()
