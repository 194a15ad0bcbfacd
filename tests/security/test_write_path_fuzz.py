"""Hostile input (ADR 0006) — arbitrary unicode and bytes through payloads, results, errors, logs
and event details, on both stores (property tests).

The property: no store call raises on content. A payload is stored exactly or refused
with ``invalid_input``; a result is stored exactly or its job fails as ``invalid_output``;
error text, error details, event details and log lines are always stored, made valid.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle import InvalidInput
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.storable import clean_text
from treadle.store import Outcome, OutcomeKind, Store, open_store

# Text that stores trip over: lone surrogates, NUL, pairs held as two code points.
NASTY = st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\ude00", "é", "😀", "a"])
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\ud83d\ude00", "a\x00b", "\ud800", "x" * 20_000]),
    st.text(alphabet=st.one_of(NASTY, st.characters(categories=["Cs"]), st.characters()),
            max_size=20),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), TEXT, st.binary(max_size=8),
    st.integers(), st.integers(min_value=2**1000, max_value=2**1100),
    st.floats(allow_nan=True, allow_infinity=True),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.integers(), st.binary(max_size=4)), inner,
                        max_size=4),
    ),
    max_leaves=20,
)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture
def store(db_url: str) -> Any:
    s = open_store(db_url)
    yield s
    s.close()


def as_stored(value: Any) -> Any:
    """What a round trip through JSON gives back (tuples become lists)."""
    return json.loads(json.dumps(value))


def same(stored: Any, sent: Any) -> bool:
    """Equal, except that a float may come back from PostgreSQL's ``jsonb`` (numeric) as
    the integer or float nearest to its shortest decimal form: compare numbers closely."""
    if isinstance(sent, float) and isinstance(stored, int | float) and not isinstance(
        stored, bool
    ):
        return math.isclose(stored, sent, rel_tol=1e-15)
    if isinstance(sent, list):
        return isinstance(stored, list) and len(stored) == len(sent) and all(
            same(a, b) for a, b in zip(stored, sent, strict=True))
    if isinstance(sent, dict):
        return isinstance(stored, dict) and stored.keys() == sent.keys() and all(
            same(stored[k], sent[k]) for k in sent)
    return bool(stored == sent and type(stored) is type(sent))


def running(store: Store) -> Any:
    queue = f"q{uuid.uuid4().hex[:8]}"
    store.enqueue([NewJob(task="t", queue=queue)])
    (job,) = store.claim(queues=[queue], worker="fuzz", limit=1, lease_seconds=60)
    return job


@FUZZ
@given(value=VALUES)
def test_payloads_are_stored_exactly_or_refused(store: Store, value: Any) -> None:
    try:
        new = NewJob(task="t", payload={"v": value})
    except InvalidInput:
        return
    (done,) = store.enqueue([new])
    assert same(store.get_job(done.job.id).payload, {"v": as_stored(value)})


@FUZZ
@given(value=VALUES)
def test_results_are_stored_exactly_or_fail_the_job(store: Store, value: Any) -> None:
    job = running(store)
    (ok,) = store.complete([Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, "fuzz",
                                    result=value)])
    assert ok
    after = store.get_job(job.id)
    if after.status is JobStatus.SUCCEEDED:
        assert same(after.result, as_stored(value))
    else:
        assert after.status is JobStatus.FAILED and after.error is not None
        assert after.error.error_class is ErrorClass.INVALID_OUTPUT


@FUZZ
@given(message=TEXT, detail=VALUES, worker=TEXT)
def test_errors_and_event_details_are_always_stored(
    store: Store, message: str, detail: Any, worker: str
) -> None:
    job = running(store)
    info = ErrorInfo(ErrorClass.PERMANENT, message, detail)
    (ok,) = store.complete([Outcome(job.id, job.lease_token, OutcomeKind.FAILED,
                                    worker or "w", error=info)])
    assert ok
    after = store.get_job(job.id)
    assert after.status is JobStatus.FAILED and after.error is not None
    assert after.error.message == clean_text(message)
    assert store.events(job.id)[-1].detail["error"]["message"] == clean_text(message)


@FUZZ
@given(lines=st.lists(st.one_of(TEXT, st.binary(max_size=8)), min_size=1, max_size=5))
def test_log_lines_are_always_stored_made_valid(store: Store, lines: list[Any]) -> None:
    job = running(store)
    store.add_logs(job.id, job.attempt, lines)
    stored = [entry.message for entry in store.logs(job.id)]
    assert stored == [clean_text(x if isinstance(x, str) else str(x)) for x in lines]
