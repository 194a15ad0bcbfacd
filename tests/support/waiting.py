"""A store's wait for work in a thread of its own, and polling until a condition holds
(tests of the idle wait and of the claim connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from treadle.store import Store


class Waiter(threading.Thread):
    """``store.wait_for_work(timeout)`` in a daemon thread; its answer in ``result``."""

    def __init__(self, store: Store, timeout: float) -> None:
        super().__init__(daemon=True)
        self.store, self.timeout = store, timeout
        self.result: bool | None = None

    def run(self) -> None:
        self.result = self.store.wait_for_work(self.timeout)


def until(pred: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``pred`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)
