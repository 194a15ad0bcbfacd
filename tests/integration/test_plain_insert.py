"""PostgreSQL's plain batch insert through libpq (ADR 0032): the same rows and the same
errors as through a psycopg cursor, a statement the server forgot prepared again, and a
lost connection seen as lost (so the retry layer decides as before)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from treadle.core.errors import StoreError
from treadle.core.job import Enqueued, NewJob
from treadle.store.postgres.inserts import job_document
from treadle.store.postgres.plaininsert import insert_plain, libpq_text
from treadle.store.postgres.retry import Reconnect, is_connection_lost
from treadle.store.postgres.store import PostgresStore, Q

SQL = libpq_text(Q["insert_jobs"])
NOW = datetime(2026, 3, 1, 12, 0, 0, 123457, UTC)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def test_rows_come_back_as_a_cursor_returns_them(conn: psycopg.Connection[object]) -> None:
    jobs = [NewJob(task="a", payload={"é": [1, None]}), NewJob(task="b", tenant="acme"),
            NewJob(task="c", idempotency_key="k1")]
    rows = insert_plain(conn, SQL, job_document(jobs), NOW)
    assert [(r["tenant"], r["idempotency_key"]) for r in rows] == [
        ("default", None), ("acme", None), ("default", "k1")]
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids)
    stored = conn.execute("SELECT id, task, payload, created_at, run_at FROM treadle_jobs "
                          "ORDER BY id").fetchall()
    assert stored == [(ids[0], "a", {"é": [1, None]}, NOW, NOW), (ids[1], "b", {}, NOW, NOW),
                      (ids[2], "c", {}, NOW, NOW)]


def test_a_statement_the_server_forgot_is_prepared_again(
    conn: psycopg.Connection[object],
) -> None:
    insert_plain(conn, SQL, job_document([NewJob(task="a")]), NOW)
    conn.execute("DEALLOCATE ALL")  # as a session reset would
    rows = insert_plain(conn, SQL, job_document([NewJob(task="b")]), NOW)
    assert len(rows) == 1
    assert conn.execute("SELECT count(*) FROM treadle_jobs").fetchone() == (2,)


def test_a_refusal_raises_the_servers_error_and_writes_nothing(
    conn: psycopg.Connection[object],
) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
        insert_plain(conn, SQL, job_document([NewJob(task="a"), NewJob(task="b",
                                                                        parent_id=999)]), NOW)
    assert not is_connection_lost(refused.value)
    assert conn.execute("SELECT count(*) FROM treadle_jobs").fetchone() == (0,)
    assert len(insert_plain(conn, SQL, job_document([NewJob(task="a")]), NOW)) == 1


def test_a_lost_connection_is_seen_as_lost(
    conn: psycopg.Connection[object], pg_url: str,
) -> None:
    insert_plain(conn, SQL, job_document([NewJob(task="a")]), NOW)
    pid = conn.info.backend_pid
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            [pid]).fetchone():  # the terminate is asynchronous
            assert time.monotonic() < deadline
            time.sleep(0.01)
    with pytest.raises(psycopg.Error) as lost:
        insert_plain(conn, SQL, job_document([NewJob(task="b")]), NOW)
    assert is_connection_lost(lost.value)


def test_the_store_refuses_a_bad_parent_alone_in_a_batch(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        with pytest.raises(StoreError):
            store.enqueue([NewJob(task="a", parent_id=424242)])
        assert store.enqueue([NewJob(task="a")])[0].created
    finally:
        store.close()


def test_a_keyed_batch_whose_connection_dies_after_sending_is_sent_again(
    pg_url: str,
) -> None:
    """Every job keyed: the insert is re-sent on a new connection (ADR 0007), now in
    autocommit through libpq. The connection is killed while the insert waits for a
    concurrent, uncommitted insert of the same key; that one then rolls back, so the
    re-sent insert creates the job, once."""
    slept: list[float] = []  # the retry's pauses: one means it was sent again once
    store = PostgresStore(pg_url, reconnect=Reconnect(sleep=slept.append))
    blocker = psycopg.connect(pg_url)
    try:
        blocker.execute("INSERT INTO treadle_jobs (queue, task, payload, run_at, max_attempts,"
                        " created_at, idempotency_key) VALUES ('default', 't', '{}', now(), 1,"
                        " now(), 'k')")
        answer: list[list[Enqueued]] = []
        caller = threading.Thread(target=lambda: answer.append(
            store.enqueue([NewJob(task="t", idempotency_key="k")])))
        with psycopg.connect(pg_url, autocommit=True) as admin:
            caller.start()
            deadline = time.monotonic() + 10
            # The insert waiting for the blocker's key (its text may be cut short in
            # pg_stat_activity: the one-job statement is long, ADR 0034).
            while not (row := admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database() AND pid <> %s",
                    [blocker.info.backend_pid]).fetchone()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            admin.execute("SELECT pg_terminate_backend(%s)", [row[0]])
            blocker.rollback()
            caller.join(30)
        assert len(slept) == 1
        (enqueued,) = answer[0]
        assert enqueued.created
        with psycopg.connect(pg_url, autocommit=True) as check:
            assert check.execute("SELECT count(*) FROM treadle_jobs WHERE idempotency_key = "
                                 "'k'").fetchone() == (1,)
    finally:
        blocker.close()
        store.close()
