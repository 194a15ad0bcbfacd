"""The real `treadle` CLI in subprocesses: clear errors, scripting output, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT, Workers
from tests.support.pg import free_port


def cli(*args: str, db: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TREADLE_APP": "tests.acceptance.app:app"}
    env.pop("TREADLE_DATABASE_URL", None)
    if db:
        env["TREADLE_DATABASE_URL"] = db
    return subprocess.run([sys.executable, "-m", "treadle", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("submit", "no_such_task"), "unknown task 'no_such_task'"),
        (("submit", "noop", "--payload", "{oops"), "not valid JSON"),
        (("submit", "noop", "--payload", "[1]"), "must be a JSON object"),
        (("submit", "sleep", "--payload", '{"secs": 1}'), "payload does not match task 'sleep'"),
        (("jobs", "show", "999999"), "job 999999 not found"),
        (("jobs", "list", "--status", "bogus"), "unknown status"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(
    db_url: str, args: tuple[str, ...], needle: str
) -> None:
    assert needle in one_line_error(cli(*args, db=db_url))


def test_bad_or_unreachable_database_urls_are_one_line_errors() -> None:
    assert "unsupported database URL scheme" in one_line_error(cli("migrate", db="mysql://x/y"))
    port = free_port()
    line = one_line_error(cli("jobs", "list", db=f"postgresql://postgres@127.0.0.1:{port}/x"))
    assert "cannot connect to PostgreSQL" in line
    line = one_line_error(cli("migrate", db="sqlite:////nonexistent/dir/t.db"))
    assert "does not exist" in line


def test_a_database_that_was_never_migrated_is_refused(tmp_path: Path) -> None:
    line = one_line_error(cli("jobs", "list", db=f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert "treadle migrate" in line


def test_submit_wait_list_show_retry_and_cancel(db_url: str, workers: Workers) -> None:
    workers.start()
    done = cli("submit", "sleep", "--payload", '{"seconds": 0.01}', "--wait", "--json",
               db=db_url)
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["result"] == 0.01
    many = cli("submit", "noop", "--count", "50", "--json", db=db_url)
    assert len(json.loads(many.stdout)) == 50
    listed = json.loads(cli("jobs", "list", "--json", "--limit", "5", db=db_url).stdout)
    assert len(listed) == 5 and listed[0]["id"] > listed[-1]["id"]
    shown = json.loads(cli("jobs", "show", str(job["id"]), "--json", db=db_url).stdout)
    assert [e["reason"] for e in shown["events"]] == ["enqueued", "claimed", "completed"]
    refused = cli("jobs", "retry", str(job["id"]), db=db_url)
    assert refused.returncode == 2 and "only failed or cancelled" in refused.stderr
    delayed = json.loads(cli("submit", "sleep", "--payload", '{"seconds": 60}', "--json",
                             db=db_url).stdout)[0]
    cancelled = cli("jobs", "cancel", str(delayed["id"]), db=db_url)
    assert cancelled.returncode == 0 and ("cancelled" in cancelled.stdout
                                          or "told to stop" in cancelled.stdout)


def test_idempotent_submit_from_the_cli_returns_the_same_job(db_url: str) -> None:
    a = json.loads(cli("submit", "noop", "--idempotency-key", "k", "--json", db=db_url).stdout)
    b = json.loads(cli("submit", "noop", "--idempotency-key", "k", "--json", db=db_url).stdout)
    assert a[0]["id"] == b[0]["id"]


def test_treadle_up_serves_http_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TREADLE_ADMIN_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "treadle", "up", "--app", "tests.acceptance.app:app",
         "--db", f"sqlite:///{tmp_path / 'up.db'}", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "treadle up did not start serving"
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
