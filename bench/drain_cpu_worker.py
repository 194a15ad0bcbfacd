"""``treadle worker`` with its statements counted (``bench/drain_cpu.py``).

    python -m bench.drain_cpu_worker INDEX worker --app ... (the CLI's arguments)

On SIGUSR1 it writes its counts so far to ``$DRAIN_CPU_SNAPSHOT_DIR/stmts-INDEX.json``
(written to a temporary name, then renamed, so the reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bench.statement_count import StatementCount, counting_statements

T = TypeVar("T")


class LockWaits:
    """Time SQLite's busy retries spent waiting for another connection's write lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waits = 0  # operations that found the database locked at least once
        self.retries = 0
        self.seconds = 0.0
        self.held = 0  # write transactions
        self.held_seconds = 0.0  # from BEGIN IMMEDIATE granted to COMMIT done
        # The same by the thread that held it (its name) and whether it flushed.
        self.held_by: dict[str, list[float]] = {}
        self._open = 0.0

    def install(self) -> None:
        from treadle.store.sqlite.store import SQLiteStore

        real = SQLiteStore._busy_retry

        def timed(op: Callable[[], T]) -> T:
            calls = 0
            first = 0.0

            def counted() -> T:
                nonlocal calls, first
                calls += 1
                if calls == 2:
                    first = time.perf_counter()
                return op()

            try:
                return real(counted)
            finally:
                if calls > 1:
                    with self.lock:
                        self.waits += 1
                        self.retries += calls - 1
                        self.seconds += time.perf_counter() - first

        SQLiteStore._busy_retry = staticmethod(timed)  # type: ignore[method-assign]
        real_tx = SQLiteStore._tx

        @contextlib.contextmanager
        def held(store: SQLiteStore, **kw: Any) -> Iterator[Any]:
            with real_tx(store, **kw) as conn:
                t0 = time.perf_counter()
                try:
                    yield conn
                finally:
                    # the COMMIT runs after this: timed by the caller's exit below
                    self._open = t0
            spent = time.perf_counter() - t0
            name = threading.current_thread().name.split("-")[0]
            key = f"{name} flush={kw.get('flush', True)}"
            with self.lock:
                self.held += 1
                self.held_seconds += spent
                by = self.held_by.setdefault(key, [0, 0.0])
                by[0] += 1
                by[1] += spent

        SQLiteStore._tx = held  # type: ignore[method-assign]


def _dump(count: StatementCount, waits: LockWaits, index: str) -> None:
    d = Path(os.environ["DRAIN_CPU_SNAPSHOT_DIR"])
    tmp = d / f".stmts-{index}.tmp"
    tmp.write_text(json.dumps({"by_label": dict(count.snapshot()), "control": count.control,
                               "change_checks": count.change_checks,
                               "lock_waits": waits.waits, "lock_retries": waits.retries,
                               "lock_wait_seconds": waits.seconds,
                               "transactions": waits.held,
                               "lock_held_seconds": waits.held_seconds,
                               "lock_held_by": waits.held_by}))
    tmp.rename(d / f"stmts-{index}.json")


def main() -> None:
    index = sys.argv[1]
    sys.argv = ["treadle", *sys.argv[2:]]
    waits = LockWaits()
    waits.install()
    # Counting costs the worker CPU (a trace callback per statement): only when asked.
    counting = counting_statements() if os.environ.get("DRAIN_CPU_COUNT") == "1" \
        else contextlib.nullcontext(StatementCount())
    with counting as count:
        def on_usr1(signum: int, frame: FrameType | None) -> None:
            _dump(count, waits, index)

        signal.signal(signal.SIGUSR1, on_usr1)
        from treadle.cli import main as treadle_main

        treadle_main()


if __name__ == "__main__":
    main()
