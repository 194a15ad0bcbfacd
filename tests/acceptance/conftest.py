from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Real `python -m treadle worker` processes."""

    def __init__(self, db_url: str, log_dir: Path) -> None:
        self.db_url = db_url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []

    def start(self, *args: str, concurrency: int | None = 4) -> subprocess.Popen[bytes]:
        """``concurrency=None``: the CLI's default (and its default claim-ahead)."""
        env = {**os.environ, "TREADLE_DATABASE_URL": self.db_url, "PYTHONPATH": str(ROOT)}
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        self._logs.append(log)  # closed by stop_all, once the process is gone
        p = subprocess.Popen(
            [sys.executable, "-m", "treadle", "worker", "--app", "tests.acceptance.app:app",
             *(() if concurrency is None else ("--concurrency", str(concurrency))),
             "--log-level", "warning", *args],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
        )
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(db_url, tmp_path)
    yield w
    w.stop_all()
    for f in sorted(tmp_path.glob("worker-*.log")):
        text = f.read_text(errors="replace")
        if "Traceback" in text:
            print(f"--- {f.name}\n{text[-4000:]}")


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
