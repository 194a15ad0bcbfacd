"""Huey side of the hand-off benchmark (bench/handoff_bench.py). Run with the huey venv.

``BENCH_HUEY_BACKEND`` picks Redis or SQLite (see ``huey_app.py``). Workers: one
``huey_consumer`` with ``--workers N --worker-type process`` (N worker processes), Huey's
defaults otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import huey_app  # noqa: E402
from peer_common import Peer, main  # noqa: E402


def _clear() -> None:
    huey_app.huey.flush()


def _enqueue(path: str, i: int, enqueued: float) -> None:
    huey_app.append(path, i, enqueued)


def _start(a: argparse.Namespace, logdir: Path) -> list[subprocess.Popen[bytes]]:
    consumer = Path(sys.executable).with_name("huey_consumer")
    log = open(logdir / "huey-consumer.log", "ab")  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return [subprocess.Popen(
        [str(consumer), "huey_app.huey", "--workers", str(a.workers), "--worker-type",
         "process", "--quiet"],
        env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]


def _versions() -> dict[str, str]:
    return {"huey": version("huey"), "redis-py": version("redis"),
            "backend": os.environ.get("BENCH_HUEY_BACKEND", "redis")}


if __name__ == "__main__":
    main(Peer(_clear, _enqueue, _start, _versions))
