"""On SQLite a claim commits without waiting for the disk (ADR 0030), and nothing else
does: the connection that ran it is back to ``synchronous=FULL`` for its next
transaction (a completion or an enqueue must never inherit the relaxed setting), even
when the claim failed. PostgreSQL claims keep the server's flush (see the ADR: a lost
claim there would hand its lease token out twice).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from treadle.core.errors import StoreError
from treadle.core.job import NewJob
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
    """What this thread's next transaction does at commit (SQLite: this thread's
    connection; PostgreSQL: the pool's only connection)."""
    if isinstance(store, SQLiteStore):
        return str(store._conn().execute("PRAGMA synchronous").fetchone()[0])
    rows = store.execute("SELECT current_setting('synchronous_commit') AS v", {},
                         write=False)
    return str(rows[0]["v"])


def test_the_connection_flushes_again_after_a_claim(db_url: str) -> None:
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


def test_a_claim_that_fails_still_restores_the_flush(sqlite_url: str) -> None:
    from treadle.testing import migrated

    store = SQLiteStore(migrated(sqlite_url))
    try:
        store.enqueue([NewJob(task="t")])
        # A claim the database refuses halfway (the queues table it reads is gone): the
        # error reaches the caller, and the connection is back to synchronous=FULL.
        store._conn().execute("ALTER TABLE treadle_queues RENAME TO treadle_queues_gone")
        with pytest.raises(StoreError, match="treadle_queues"):
            store.claim(queues=None, worker="w", limit=1, lease_seconds=60)
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == _FULL
        assert not store._conn().in_transaction
    finally:
        store.close()
