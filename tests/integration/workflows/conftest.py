"""Workflows against real databases, with an in-process worker."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from treadle import Treadle
from treadle.core.job import JobKind
from treadle.testing import run_worker
from treadle.worker import Worker


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


@contextlib.contextmanager
def Running(app: Treadle, **config: Any) -> Iterator[Worker]:
    """A worker thread serving ``app`` (tasks and workflows, with the waker)."""
    assert JobKind.WORKFLOW in app.executors()
    with run_worker(app, **config) as worker:
        yield worker
