"""Agents against real databases, with an in-process worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from treadle import Treadle


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()
