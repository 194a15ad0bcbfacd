"""Hostile values on the command line the other security tests do not reach: JSON options
nested 10,000 deep or with integers beyond Python's 4300 digits (a traceback before), a
wait that is not a number, key names with control characters. Each refusal is one line
on stderr, exit status 2, and nothing written. Real ``treadle`` processes, both stores.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.security.test_surfaces import cli
from treadle import Treadle
from treadle.api.auth import keystore_for
from treadle.core.job import JobFilter

DEEP = "[" * 10_000 + "]" * 10_000
HUGE_INT = "1" + "0" * 5000  # json.loads: ValueError, not JSONDecodeError


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    rc, err = proc.returncode, proc.stderr
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def nothing_written(db_url: str) -> None:
    app = Treadle(db_url)
    try:
        assert app.list_jobs(JobFilter(limit=10)) == []
    finally:
        app.close()


@pytest.mark.parametrize(("payload", "needle"), [
    ('{"value": ' + DEEP + "}", "nested too deeply"),
    (DEEP, "nested too deeply"),
    ('{"value": ' + HUGE_INT + "}", "not valid JSON"),
])
def test_submit_payloads_that_json_cannot_read_get_one_line(db_url: str, payload: str,
                                                            needle: str) -> None:
    one_line_error(cli("submit", "give", "--payload", payload, "--db", db_url),
                   "--payload", needle)
    nothing_written(db_url)


@pytest.mark.parametrize("timeout", ["nan", "-1"])
def test_submit_and_wait_refuses_a_wait_that_is_no_duration_before_submitting(
        db_url: str, timeout: str) -> None:
    one_line_error(cli("submit", "give", "--wait", "--timeout", timeout, "--db", db_url),
                   "--timeout")
    nothing_written(db_url)


@pytest.mark.parametrize("value", [DEEP, HUGE_INT])
def test_event_payloads_that_json_cannot_read_get_one_line(db_url: str, value: str) -> None:
    one_line_error(cli("events", "send", "k", "--payload", value, "--db", db_url),
                   "--payload")


@pytest.mark.parametrize("value", [DEEP, HUGE_INT])
def test_dynamic_run_inputs_that_json_cannot_read_get_one_line(db_url: str,
                                                              value: str) -> None:
    one_line_error(cli("dynamic", "run", "dw_000000000000000000000000", "--input", value,
                       "--db", db_url), "--input")
    nothing_written(db_url)


@pytest.mark.parametrize("name", ["n\x01", "tab\there", " padded", "x" * 201])
def test_key_names_that_cannot_be_names_are_refused(db_url: str, name: str) -> None:
    one_line_error(cli("keys", "create", "--tenant", "t", "--scopes", "read", "--name", name,
                       "--db", db_url), "name")
    app = Treadle(db_url)
    try:
        assert keystore_for(app).list_keys() == []
    finally:
        app.close()


@pytest.mark.parametrize("queues", ["a\x01", "ok,b\x7f", "x" * 201])
def test_a_worker_for_a_queue_no_job_can_have_is_refused_not_left_waiting(
        db_url: str, queues: str) -> None:
    """Before: the worker started and waited forever on a queue nothing can be sent to."""
    one_line_error(cli("worker", "--queues", queues, "--burst", "--db", db_url), "queue")
