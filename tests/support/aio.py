"""Run a coroutine to completion from synchronous test code.

Playwright's sync API (the UI tests) leaves an event loop set on the main thread of
the pytest process, so a plain ``asyncio.run`` in a later test fails with "cannot be
called from a running event loop" in a full run and passes alone. Hosting the loop in
a fresh thread makes such tests independent of what ran before them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    results: list[T] = []
    errors: list[BaseException] = []

    def host() -> None:
        try:
            results.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=host, name="test-event-loop")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
