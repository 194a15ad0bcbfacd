"""A task's requests built from its checked plain request (``NewJob.with_payload``) and
the enqueue's lazily built records (``Enqueued.new``), ADR 0032: the same requests and
records as the long way, and hostile payloads refused the same way."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from treadle import Treadle
from treadle.core.errors import InvalidInput
from treadle.core.job import Enqueued, NewJob
from treadle.task import TaskOptions


def _fields(nj: NewJob) -> dict[str, Any]:
    return {f.name: getattr(nj, f.name) for f in dataclasses.fields(nj)}


@pytest.fixture
def app(tmp_path: Any) -> Any:
    app = Treadle(f"sqlite:///{tmp_path}/t.db")

    @app.task(name="t", queue="q1", retries=4, timeout=12.5, priority=3, max_crashes=7)
    def t(**kw: Any) -> None: ...

    app.migrate()
    yield app
    app.close()


def _long_way(app: Treadle, payload: dict[str, Any]) -> NewJob:
    o = app.get_task("t").options
    return NewJob(task="t", payload=payload, queue=o.queue, priority=o.priority,
                  max_attempts=o.retries + 1, timeout=o.timeout, max_crashes=o.max_crashes)


PAYLOADS: list[dict[str, Any]] = [
    {}, {"a": 1}, {"é": "ü\u2028", "n": [1, 2.5, None, True, {"x": []}]},
    {"big": 2**1000, "neg": -0.0},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_plain_defer_builds_the_request_the_constructor_builds(
    app: Treadle, payload: dict[str, Any],
) -> None:
    fast = app.get_task("t").new_job(payload)
    slow = _long_way(app, dict(payload))
    assert _fields(fast) == _fields(slow)
    assert fast == slow and type(fast) is NewJob
    assert fast.payload_json == slow.payload_json == json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"))
    assert fast.payload is not payload  # a copy, as before: the caller's dict stays theirs


def test_a_request_with_its_own_options_still_takes_the_long_way(app: Treadle) -> None:
    task = app.get_task("t")
    at = datetime(2030, 1, 1, tzinfo=UTC)
    nj = task.new_job({"a": 1}, idempotency_key="k", run_at=at, priority=-2, queue="q2",
                      tenant="t2", callback_url="https://example.com/cb")
    assert (nj.idempotency_key, nj.run_at, nj.priority, nj.queue, nj.tenant,
            nj.callback_url) == ("k", at, -2, "q2", "t2", "https://example.com/cb")
    with pytest.raises(InvalidInput, match="priority must be between"):
        task.new_job({"a": 1}, priority=10**6)


def test_replaced_task_options_give_a_new_plain_request(app: Treadle) -> None:
    task = app.get_task("t")
    assert task.new_job({}).max_attempts == 5
    task.options = TaskOptions(queue="other", retries=0)
    nj = task.new_job({})
    assert (nj.queue, nj.max_attempts, nj.priority) == ("other", 1, 0)


def _deep(levels: int) -> Any:
    deep: Any = []
    for _ in range(levels):
        deep = [deep]
    return deep


HOSTILE: list[tuple[Any, str]] = [
    ({"s": "a\ud800b"}, r"payload\.s cannot be stored: it contains a string with a lone "
                        "surrogate or NUL"),
    ({"s": "a\x00b"}, r"payload\.s cannot be stored: it contains a string with a lone"),
    ({"a\x00": 1}, "a key with a lone surrogate or NUL"),
    ({"d": _deep(5000)}, "nesting deeper than 100 levels"),
    ({"f": float("nan")}, r"a non-finite number \(nan\)"),
    ({"o": object()}, "a value of type object"),
    ({1: "x"}, "a key that is not a string"),
]


@pytest.mark.parametrize(("payload", "message"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_payloads_are_refused_alike_both_ways(
    app: Treadle, payload: dict[Any, Any], message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        app.get_task("t").new_job(payload)
    with pytest.raises(InvalidInput, match=message):
        _long_way(app, payload)
    if all(type(k) is str for k in payload):  # defer takes them as keywords
        with pytest.raises(InvalidInput, match=message):
            app.get_task("t").defer(**payload)
    assert sum(app.store.count_by_status().values()) == 0  # nothing was stored


def test_a_50_mb_payload_is_refused_by_size_and_nothing_is_stored(app: Treadle) -> None:
    with pytest.raises(InvalidInput, match=r"payload is 52428\d+ bytes; the limit is 1048576"):
        app.get_task("t").defer(blob="x" * (50 << 20))
    assert sum(app.store.count_by_status().values()) == 0


def test_with_payload_refuses_what_is_not_a_dict() -> None:
    with pytest.raises(InvalidInput, match="payload must be a JSON object"):
        NewJob(task="t").with_payload([1])  # type: ignore[arg-type]


def test_a_lazily_built_record_is_the_one_built_at_once() -> None:
    nj = NewJob(task="t", payload={"a": [1, {"b": "é"}]}, timeout=3)
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    later = at + timedelta(seconds=9)
    lazy = Enqueued.new(nj, 42, at)
    assert (lazy.id, lazy.created) == (42, True)
    assert lazy.job == nj.stored(42, at, at)
    assert lazy.job is lazy.job  # built once
    assert Enqueued.new(nj, 42, at, later).job.run_at == later
    assert lazy == Enqueued(nj.stored(42, at, at), created=True)
    assert lazy != Enqueued(nj.stored(42, at, at), created=False)
    eager = Enqueued(nj.stored(7, at, at), created=False)
    assert (eager.id, eager.created, eager.job.id) == (7, False, 7)
    with pytest.raises(AttributeError):
        lazy.created = False  # type: ignore[misc]


def test_a_defer_hands_back_the_stored_record_when_asked(app: Treadle) -> None:
    handle = app.get_task("t").defer(a=1)
    assert handle.job == app.get_job(handle.id)
    assert handle.created


def test_the_batch_document_is_the_same_whether_its_columns_were_cached_or_not() -> None:
    from treadle.store.postgres import inserts

    at = datetime(2030, 1, 1, tzinfo=UTC)
    jobs = [NewJob(task="t", payload={"n": 1}, timeout=30), NewJob(task="t", timeout=30.0),
            NewJob(task="t", payload={"n": 2}, timeout=30), NewJob(task="t", priority=1),
            NewJob(task="t", run_at=at), NewJob(task="t", idempotency_key="k"),
            NewJob(task="u", queue="q", tenant="x", max_crashes=2, max_attempts=4)]
    fresh = [json.loads(f'{{"payload":{nj.payload_json},{inserts._columns(nj)}')
             for nj in jobs]
    inserts._PLAIN_TAILS.clear()
    for _ in range(2):  # filling the cache, then from it
        doc = inserts.job_document(jobs)
        assert json.loads(doc) == fresh
        assert '"timeout":30,' in doc and '"timeout":30.0,' in doc  # 30 and 30.0 kept apart
