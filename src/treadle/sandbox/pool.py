"""The warm pool: pre-spawned Python sandboxes waiting for code, each used exactly once."""

from __future__ import annotations

import threading
from collections import deque

from treadle.sandbox.py_host import PyInstance


class WarmPool:
    """Keeps ``size`` started interpreters (inside bwrap, filter installed) ready.

    ``acquire`` hands one out (or spawns one cold when the pool is empty) and a background
    thread replaces it. An instance runs one worker and is then discarded, so no run ever
    sees state from another.
    """

    def __init__(self, size: int, tmp_bytes: int) -> None:
        self.size = size
        self.tmp_bytes = tmp_bytes
        self._ready: deque[PyInstance] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if size > 0:
            self._thread = threading.Thread(target=self._fill, name="treadle-py-pool", daemon=True)
            self._thread.start()

    def acquire(self) -> tuple[PyInstance, bool]:
        """(instance, from_pool). A cold instance is spawned when the pool is empty."""
        with self._cond:
            inst = self._ready.popleft() if self._ready else None
            self._cond.notify_all()
        if inst is not None and inst.proc.poll() is None:
            return inst, True
        if inst is not None:
            inst.kill()
        inst = PyInstance(self.tmp_bytes)
        inst.wait_ready()
        return inst, False

    def ready_count(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_full(self, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= self.size, timeout)

    def _fill(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or len(self._ready) < self.size)
                if self._closed:
                    return
            try:
                inst = PyInstance(self.tmp_bytes)
                inst.wait_ready()
            except Exception:  # a failed spawn must not kill the filler; retry shortly
                with self._cond:
                    self._cond.wait(0.5)
                continue
            with self._cond:
                if self._closed:
                    inst.kill()
                    return
                self._ready.append(inst)
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
        for inst in pending:
            inst.kill()
        if self._thread is not None:
            self._thread.join(timeout=15)
