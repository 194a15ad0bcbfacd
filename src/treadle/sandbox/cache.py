"""The LRU index of warm ``get`` instances: capacity and idle-time bounded."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class LruCache(Generic[V]):
    """Not thread-safe; the manager guards it with its lock.

    Evicted values are returned to the caller, who owns their clean-up (killing a process
    or dropping an isolate) and does it outside the lock.
    """

    def __init__(self, capacity: int, idle_seconds: float) -> None:
        if capacity < 0 or idle_seconds <= 0:
            raise ValueError("capacity must be >= 0 and idle_seconds > 0")
        self.capacity = capacity
        self.idle_seconds = idle_seconds
        self._items: OrderedDict[tuple[str, str], tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._items

    def get(self, key: tuple[str, str]) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items[key] = (item[0], time.monotonic())
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple[str, str], value: V) -> list[V]:
        evicted: list[V] = []
        old = self._items.pop(key, None)
        if old is not None and old[0] is not value:
            evicted.append(old[0])
        if self.capacity == 0:
            return [*evicted, value]
        self._items[key] = (value, time.monotonic())
        while len(self._items) > self.capacity:
            evicted.append(self._items.popitem(last=False)[1][0])
        return evicted

    def pop(self, key: tuple[str, str]) -> V | None:
        item = self._items.pop(key, None)
        return None if item is None else item[0]

    def expire(self) -> list[V]:
        """Remove entries idle for longer than ``idle_seconds``."""
        limit = time.monotonic() - self.idle_seconds
        stale = [k for k, (_, used) in self._items.items() if used < limit]
        return [self._items.pop(k)[0] for k in stale]

    def clear(self) -> list[V]:
        values = [v for v, _ in self._items.values()]
        self._items.clear()
        return values
