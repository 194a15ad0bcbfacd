"""The hand-off channel (ADR 0034) with a tenant's hostile payloads: what reaches the
parked worker is exactly what was stored, at the deepest nesting a payload may have and
with every character JSON must escape, and nothing another worker parked is handed to a
worker it was not meant for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_handoff import W, _park, _taken, _until_parked
from treadle.core.errors import ConfigurationError
from treadle.core.job import NewJob
from treadle.core.storable import MAX_DEPTH
from treadle.store import open_store
from treadle.worker import WorkerConfig


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"d": value}
    return value


ESCAPES = '"\\/\b\f\n\r\t\x01\x1f\x7f\u2028\u2029\ufeff😀é'


@pytest.mark.parametrize("payload", [
    {"deep": _deep(MAX_DEPTH - 1)},
    {"text": ESCAPES, ESCAPES: [ESCAPES, 2**63 - 1, 0.1]},
    {"big": "x" * 1_000_000},  # past a notification's size: the worker reads the row
    # jsonb keeps numbers as numerics: 1e308 reads back as an integer and -0.0 as 0.0 on
    # every PostgreSQL read, so here the promise is "as the store reads it".
    {"numbers": [1e308, -0.0, 5e-324]},
], ids=["deepest allowed", "characters JSON escapes", "1 MB", "jsonb numbers"])
def test_a_handed_payload_reaches_the_worker_exactly_as_stored(
    pg_url: str, payload: dict[str, Any],
) -> None:
    worker, producer = open_store(pg_url), open_store(pg_url)
    try:
        assert worker.claim(queues=None, worker=W, limit=1, lease_seconds=30) == []
        waiter = _park(worker)
        _until_parked(pg_url)
        [enqueued] = producer.enqueue([NewJob(task="t", payload=payload)])
        [job] = _taken(worker, waiter)
        assert job.id == enqueued.id
        assert job.payload == producer.get_job(job.id).payload
        if "numbers" not in payload:
            assert job.payload == payload
    finally:
        worker.close()
        producer.close()


def test_a_job_handed_to_one_worker_is_never_taken_by_another_of_the_same_store(
    pg_url: str,
) -> None:
    """Two workers on one store (one claim connection): the delivery names its owner."""
    worker, producer = open_store(pg_url), open_store(pg_url)
    try:
        assert worker.claim(queues=None, worker=W, limit=1, lease_seconds=30) == []
        waiter = _park(worker)
        _until_parked(pg_url)
        [enqueued] = producer.enqueue([NewJob(task="t")])
        waiter.join(10)
        assert worker.take_handed("someone-else") == []
        assert [j.id for j in worker.take_handed(W)] == [enqueued.id]
        assert worker.take_handed(W) == []  # each once
        # A worker's name is what its parked row is keyed by: one that is no text is
        # refused where workers are configured, before any store sees it.
        for name in ("\ud800", "a\x00b"):
            with pytest.raises(ConfigurationError):
                WorkerConfig(name=name)
    finally:
        worker.close()
        producer.close()


def test_a_claim_connection_whose_lock_key_another_session_holds_draws_again(
    pg_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Someone else (another worker by a one-in-2^61 chance, or a session on purpose)
    # holds the key drawn: the connection must take another key, not wait for that one.
    import psycopg

    from treadle.store.postgres import session

    taken, fresh = 0x2000_0000_0000_0001, 0x2000_0000_0000_0002
    keys = iter([taken, fresh])
    monkeypatch.setattr(session, "_random_key", lambda: next(keys))
    with psycopg.connect(pg_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [taken])
        store = open_store(pg_url)
        try:
            assert store.claim(queues=None, worker=W, limit=1, lease_seconds=30) == []
            assert store._cc.lock_key == fresh  # type: ignore[attr-defined]
        finally:
            store.close()
