"""A store's wait for work in a thread of its own, and polling until a condition holds
(tests of the idle wait and of the claim connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from treadle.store import Store
from treadle.store.base import Parking


class Waiter(threading.Thread):
    """``store.wait_for_work(timeout, park)`` in a daemon thread; its answer in ``result``."""

    def __init__(self, store: Store, timeout: float, park: Parking | None = None) -> None:
        super().__init__(daemon=True)
        self.store, self.timeout, self.park = store, timeout, park
        self.result: bool | None = None

    def run(self) -> None:
        self.result = self.store.wait_for_work(self.timeout, self.park)


def until(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)
