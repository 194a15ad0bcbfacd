"""Hostile input (ADR 0006) — one character stops a worker. Library surface, both stores.

Before the fix a lone surrogate (or NUL, on PostgreSQL) in a result or a log line made
the store raise in the flusher thread: the thread died and that worker never completed
another job. Each test ends by showing the same worker still completes a plain job.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.running import Running, finished
from treadle import InvalidInput, JobStatus, Treadle
from treadle.core.errors import ErrorClass
from treadle.core.job import NewJob

MAX_DEPTH = 100  # treadle.core.storable.MAX_DEPTH, ADR 0006


def still_works(app: Treadle) -> None:
    assert finished(app, app.defer("give", {"value": 7}).id).result == 7


def failed_as_invalid_output(app: Treadle, job_id: int) -> str:
    job = finished(app, job_id)
    assert job.status is JobStatus.FAILED, job
    assert job.error is not None and job.error.error_class is ErrorClass.INVALID_OUTPUT, job.error
    assert job.attempt == 1  # never retried
    return job.error.message


def test_a_lone_surrogate_result_fails_that_job_and_the_worker_carries_on(app: Treadle) -> None:
    with Running(app):
        message = failed_as_invalid_output(app, app.defer("lone_surrogate").id)
        assert "result" in message and "lone surrogate" in message
        still_works(app)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("nan", "non-finite"),
        ("inf", "non-finite"),
        ("bigint", "integer beyond"),
        ("intkey", "not a string"),
        ("bytes", "bytes"),
        ("nul", "NUL"),
    ],
)
def test_results_that_cannot_be_stored_fail_classified(
    app: Treadle, kind: str, needle: str
) -> None:
    with Running(app):
        assert needle in failed_as_invalid_output(app, app.defer("weird_result",
                                                                 {"kind": kind}).id)
        still_works(app)


def test_deep_and_huge_results_fail_classified(app: Treadle) -> None:
    with Running(app):
        assert "deeper than" in failed_as_invalid_output(
            app, app.defer("deep_result", {"depth": 10_000}).id)
        assert "limit" in failed_as_invalid_output(app, app.defer("huge_result", {"mb": 50}).id)
        # At the limit is fine: nesting is refused only beyond MAX_DEPTH.
        ok = finished(app, app.defer("deep_result", {"depth": MAX_DEPTH - 1}).id)
        assert ok.status is JobStatus.SUCCEEDED
        still_works(app)


def test_log_lines_are_made_valid_not_dropped(app: Treadle) -> None:
    with Running(app):
        job = finished(app, app.defer("say_raw").id)
        assert job.status is JobStatus.SUCCEEDED
        still_works(app)
    lines = [entry.message for entry in app.job_logs(job.id)]
    assert lines[0] == "\ufffd lone"
    assert lines[1] == "nul \ufffd here"
    assert lines[2] == "pair \U0001f600"  # a surrogate pair held as two code points is joined
    assert lines[3].startswith("x" * 1000) and "not stored" in lines[3]


def test_a_failure_with_hostile_text_and_detail_is_recorded(app: Treadle) -> None:
    with Running(app):
        job = finished(app, app.defer("raise_weird").id)
        assert job.status is JobStatus.FAILED and job.error is not None
        assert job.error.error_class is ErrorClass.PERMANENT
        assert job.error.message == "bad \ufffd \ufffd"
        info = job.error.detail["info"]
        assert info["1"] == "nan" and "not stored" in str(info["deep"])
        still_works(app)
    events = app.job_events(job.id)
    assert events[-1].detail["error"]["message"] == "bad \ufffd \ufffd"


def test_an_exception_whose_str_raises_fails_its_job(app: Treadle) -> None:
    # Before: classifying it raised in the executor thread, which died with the job
    # left running forever (and the worker one slot short).
    with Running(app, concurrency=1):
        job = finished(app, app.defer("raise_hostile").id)
        assert job.status is JobStatus.FAILED and job.error is not None
        still_works(app)


def test_a_continuation_payload_that_cannot_be_stored_fails_classified(app: Treadle) -> None:
    with Running(app):
        assert "continuation payload" in failed_as_invalid_output(
            app, app.defer("continue_bad").id)
        still_works(app)


BAD_PAYLOADS: list[tuple[dict[str, Any], str]] = [
    ({"value": "\ud800"}, "lone surrogate"),
    ({"value": "a\x00b"}, "NUL"),
    ({"value\x00": 1}, "NUL"),
    ({"value": float("nan")}, "non-finite"),
    ({"value": 2**5000}, "integer beyond"),
    ({"value": {1: 2}}, "not a string"),
    ({"value": b"bytes"}, "bytes"),
]


@pytest.mark.parametrize(("payload", "needle"), BAD_PAYLOADS)
def test_payloads_that_cannot_be_stored_are_refused_at_submit(
    app: Treadle, payload: dict[str, Any], needle: str
) -> None:
    with pytest.raises(InvalidInput, match=needle):
        app.defer("give", payload)
    with pytest.raises(InvalidInput):  # the core refuses too, whoever builds the job
        app.enqueue([NewJob(task="give", payload=payload)])
    assert app.list_jobs() == []  # nothing stored


def test_deep_and_huge_payloads_are_refused_at_submit(app: Treadle) -> None:
    deep: Any = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(InvalidInput, match="deeper than"):
        app.defer("give", {"value": deep})
    with pytest.raises(InvalidInput, match="limit"):
        app.defer("give", {"value": "x" * (50 << 20)})
    assert app.list_jobs() == []


@pytest.mark.parametrize("field", ["concurrency_key", "callback_url"])  # names: validate_name
@pytest.mark.parametrize("bad", ["\ud800", "a\x00b"])
def test_names_and_keys_with_surrogates_or_nul_are_refused(
    app: Treadle, field: str, bad: str
) -> None:
    fields: dict[str, Any] = {"task": "give", field: bad}
    with pytest.raises(InvalidInput):
        app.enqueue([NewJob(**fields)])
    assert app.list_jobs() == []


KV_NASTY = (
    "def handler(input, env):\n"
    "    seen = []\n"
    "    nasty = (('\\ud800', 'v'), ('k', 'a\\x00b'), ('k\\x00', 'v'), ('k', '\\udfff'))\n"
    "    for key, value in nasty:\n"
    "        try:\n"
    "            env.kv.put(key, value)\n"
    "            seen.append('stored')\n"
    "        except Exception as exc:\n"
    "            seen.append(str(exc))\n"
    "    env.kv.put('k', 'fine')\n"
    "    return [seen, env.kv.get('k')]\n"
)


def test_kv_keys_and_values_that_cannot_be_stored_are_refused_to_the_code(
    dyn: Any,
) -> None:
    # Before: the store raised, the code was told env.kv was "temporarily unavailable"
    # and the job was blamed on the infrastructure (transient).
    w = dyn.workers.register(KV_NASTY, "python", {"timeout": 10}, kv=True)
    job = dyn.finished(dyn.workers.run(w.id, None).id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    seen, value = job.result
    assert value == "fine"
    assert all("valid Unicode" in s for s in seen), seen


@pytest.mark.parametrize("bad", [
    {"code": "def handler(i, env):\n    return '\ud800'\n"},
    {"code": "def handler(i, env):\n    return 1\n", "fetch_allow": ["exa\ud800mple.com"]},
    {"code": "def handler(i, env):\n    return 1\n", "fetch_allow": ["exa\x00mple.com"]},
])
def test_worker_code_and_allow_lists_that_cannot_be_stored_are_refused(
    dyn: Any, bad: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        dyn.workers.register(language="python", **bad)
    assert dyn.workers.list() == []


def test_a_worker_name_that_cannot_be_stored_is_refused() -> None:
    from treadle.core.errors import ConfigurationError
    from treadle.worker import WorkerConfig

    for name in ("w\ud800", "w\x00", ""):
        with pytest.raises(ConfigurationError):
            WorkerConfig(name=name)


def test_async_tasks_with_hostile_output_fail_and_the_loop_carries_on(app: Treadle) -> None:
    with Running(app):
        failed_as_invalid_output(app, app.defer("async_surrogate").id)
        hostile = finished(app, app.defer("async_hostile").id)
        assert hostile.status is JobStatus.FAILED and hostile.error is not None
        assert hostile.error.message == "HostileStr"
        failed_as_invalid_output(app, app.defer("async_surrogate").id)  # loop still runs
        still_works(app)
