"""``make run``'s first impression: ``treadle up`` with the example app (examples/starter)
in a real process; jobs of every sort complete within seconds, seen through the HTTP API
(the remote client), and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pg import free_port
from tests.support.sandbox import require_bwrap
from treadle.client import Client
from treadle.core.errors import Transient
from treadle.core.lifecycle import JobStatus

ROOT = Path(__file__).resolve().parents[2]


def test_treadle_up_with_the_example_app_shows_work_moving(tmp_path: Path) -> None:
    require_bwrap()  # the example runs a dynamic worker
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("TREADLE_ADMIN_KEY", "TREADLE_DATABASE_URL", "TREADLE_APP"):
        env.pop(name, None)  # open on loopback, the app's default database: as `make run`
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "treadle", "up", "--app", "examples.starter.app:app",
         "--port", str(port)],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        with Client(f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 60
            finished: dict[str, JobStatus] = {}
            wanted = {"feed", "resize", "send_email", "checksum", "dynamic"}
            while not wanted <= set(finished):
                assert proc.poll() is None, (tmp_path / "up.log").read_text()
                assert time.monotonic() < deadline, (finished, (tmp_path / "up.log").read_text())
                try:
                    page = client.list_jobs(limit=100)
                except Transient:  # not serving yet
                    time.sleep(0.2)
                    continue
                for job in page.jobs:
                    if job.status is JobStatus.SUCCEEDED:
                        finished[job.task.split(":")[0]] = job.status
                pending = [j for j in page.jobs if not j.is_finished]
                if pending and not wanted <= set(finished):
                    client.wait(pending[-1].id, timeout=10)  # follows the stream, no polling
                elif not wanted <= set(finished):
                    time.sleep(0.2)  # nothing running yet: the feed fires at start
            runs = [j for j in client.list_jobs(limit=100).jobs
                    if j.task.startswith("dynamic:")]
            assert runs and runs[-1].result == {"words": 11, "distinct": 5}
        assert (tmp_path / "treadle.db").exists()  # the embedded default, in the cwd
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
