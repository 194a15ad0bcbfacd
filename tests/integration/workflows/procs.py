"""Real `python -m treadle worker` processes serving wf_app, for the kill -9 proofs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcs:
    app = "tests.integration.workflows.wf_app:app"

    def __init__(self, db_url: str, marks: Path, logs: Path) -> None:
        self.db_url = db_url
        self.marks = marks
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return {**os.environ, "TREADLE_DATABASE_URL": self.db_url, "PYTHONPATH": str(ROOT),
                "WF_MARKS": str(self.marks)}

    def start(self, *, concurrency: int = 1, lease: float = 2.0) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker-{len(self.procs)}.log", "wb") as log:
            p = subprocess.Popen(  # the child keeps its own copy of the log's descriptor
                [sys.executable, "-m", "treadle", "worker", "--app", self.app,
                 "--concurrency", str(concurrency), "--lease-seconds", str(lease),
                 "--log-level", "warning"],
                env=self.env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
            )
        self.procs.append(p)
        return p

    def kill9(self, p: subprocess.Popen[bytes]) -> None:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()

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

    def lines(self) -> list[str]:
        out: list[str] = []
        for f in sorted(self.marks.glob("*.log")):
            out.extend(f.read_text().splitlines())
        return out

    def count(self, prefix: str) -> Counter[str]:
        return Counter(line.split(" ", 1)[1] for line in self.lines()
                       if line.startswith(prefix + " "))

    def tracebacks(self) -> str:
        out = []
        for f in sorted(self.logs.glob("worker-*.log")):
            text = f.read_text(errors="replace")
            if "Traceback" in text:
                out.append(f"--- {f.name}\n{text[-4000:]}")
        return "\n".join(out)


def wait_until(cond: Callable[[], bool], timeout: float, what: str,
               tick: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if tick is not None:
            tick()
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
