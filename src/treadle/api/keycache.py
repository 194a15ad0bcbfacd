"""Recently seen API keys, so a request with a tenant's key need not read the database
(ADR 0033).

Bounded staleness instead of notification: a key revoked in *another* process (``treadle
keys revoke``, another ``treadle server --workers`` process) keeps working here for at
most ``ttl`` seconds after its revocation committed, because an entry is only as old as
the read that found the key valid, and that read began before the revocation (or it
would have seen it). A revocation through this process's :class:`KeyStore` takes effect
at once. Only valid keys are kept: an unknown or revoked key is read every time, so a
key created elsewhere works at once and a refused one stays refused.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from treadle.core.clock import Clock

if TYPE_CHECKING:
    from treadle.api.keystore import ApiKey

DEFAULT_TTL = 1.0  # seconds a revoked key may go on working in another process


class KeyCache:
    """Valid keys by the hash of their secret, each with the time its read began.

    Read from the event loop and written from the thread pool; one lock guards both."""

    def __init__(self, clock: Clock, max_entries: int = 4096) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # moved on by every revocation seen here

    def get(self, key_hash: str, ttl: float) -> ApiKey | None:
        """The key, if it was read valid less than ``ttl`` seconds ago."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        key, read_at = entry
        if self._clock.monotonic() - read_at < ttl:
            return key
        with self._lock:
            if self._entries.get(key_hash) is entry:
                del self._entries[key_hash]
        return None

    def start_read(self) -> tuple[float, int]:
        """Call before reading a key: the read's start time and the generation, for
        :meth:`put`."""
        return self._clock.monotonic(), self._generation

    def put(self, key_hash: str, key: ApiKey, started: tuple[float, int]) -> None:
        """Keep ``key`` (read valid by a read that began at ``started``), unless a key was
        revoked here meanwhile: that read may predate the revocation."""
        read_at, generation = started
        with self._lock:
            if generation != self._generation or key.revoked:
                return
            if len(self._entries) >= self._max and key_hash not in self._entries:
                del self._entries[next(iter(self._entries))]  # the oldest insertion
            self._entries[key_hash] = (key, read_at)

    def forget(self, key_id: str) -> None:
        """A key was revoked through this process: refuse it from now on."""
        with self._lock:
            self._generation += 1
            for key_hash in [h for h, (k, _) in self._entries.items() if k.id == key_id]:
                del self._entries[key_hash]

    def __len__(self) -> int:
        return len(self._entries)
