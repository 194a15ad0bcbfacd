"""Dramatiq side of the hand-off benchmark (bench/handoff_bench.py). Run with its venv.

Workers: ``dramatiq dramatiq_app --processes N`` (Dramatiq's default 8 threads each).
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

import dramatiq_app  # noqa: E402
from peer_common import Peer, main  # noqa: E402


def _clear() -> None:
    dramatiq_app.broker.flush_all()


def _enqueue(path: str, i: int, enqueued: float) -> None:
    dramatiq_app.append.send(path, i, enqueued)


def _start(a: argparse.Namespace, logdir: Path) -> list[subprocess.Popen[bytes]]:
    cli = Path(sys.executable).with_name("dramatiq")
    log = open(logdir / "dramatiq.log", "ab")  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return [subprocess.Popen(
        [str(cli), "dramatiq_app", "--processes", str(a.workers)],
        env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]


def _versions() -> dict[str, str]:
    return {"dramatiq": version("dramatiq"), "redis-py": version("redis")}


if __name__ == "__main__":
    main(Peer(_clear, _enqueue, _start, _versions))
