"""Answers from a thread to an asyncio event loop, one wake-up per burst (ADR 0033).

``asyncio.wrap_future`` wakes the loop once per future: the group committer answers a
batch of N submissions with N writes to the loop's self-pipe, and the loop, woken by the
first, wants the GIL back while the committer is still answering the rest. Here the
answers of a burst queue up and the loop is woken once to resolve them all.
Cancelling the awaiting future cancels the thread's future (a submission not yet in
a batch is withdrawn), as with ``wrap_future``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBridge] = (
    weakref.WeakKeyDictionary())
_bridges_lock = threading.Lock()


class LoopBridge:
    """Resolves the loop's futures for thread futures, batching the loop's wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: deque[tuple[asyncio.Future[Any], Future[Any]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False  # a _drain is pending on the loop
        self.wakeups = 0  # drains run (the loop woken), for tests and benches

    def wrap(self, future: Future[T]) -> asyncio.Future[T]:
        """An asyncio future of this loop with ``future``'s outcome (call on the loop)."""
        waiter: asyncio.Future[T] = self._loop.create_future()
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
        future.add_done_callback(lambda f: self._completed(waiter, f))
        return waiter

    def _completed(self, waiter: asyncio.Future[Any], future: Future[Any]) -> None:
        """Any thread: queue the outcome; wake the loop unless a drain is pending."""
        self._done.append((waiter, future))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self.wakeups += 1
        with self._lock:
            self._scheduled = False  # before popping: a later answer schedules again
        done = self._done
        while done:
            waiter, future = done.popleft()
            if waiter.done():
                continue  # cancelled meanwhile
            if future.cancelled():
                waiter.cancel()
                continue
            exc = future.exception()
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(future.result())


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """The loop's bridge (made on first use)."""
    bridge = _bridges.get(loop)
    if bridge is None:
        with _bridges_lock:
            bridge = _bridges.get(loop)
            if bridge is None:
                bridge = _bridges[loop] = LoopBridge(loop)
    return bridge


def wrap_future(future: Future[T]) -> asyncio.Future[T]:
    """``asyncio.wrap_future`` for the running loop, through its :class:`LoopBridge`."""
    return bridge_for(asyncio.get_running_loop()).wrap(future)
