"""``Store.transaction()``: a plug-in's own rows and new jobs, committed together.

A job-kind plug-in (a workflow writing a checkpoint and its child jobs, say) must not
leave one without the other. Both backends hand out this object inside one database
transaction: its named queries (``execute``) and ``enqueue`` share that transaction, and
idle workers are woken only after it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, LiteralString

from treadle.core.job import Enqueued, NewJob
from treadle.store.rows import Codec

Rows = list[Mapping[str, Any]]


class StoreTransaction:
    """One open write transaction (see :meth:`treadle.store.Store.transaction`).

    Valid only inside its ``with`` block and on the thread that opened it.
    """

    def __init__(
        self,
        execute: Callable[[LiteralString, Mapping[str, Any]], Rows],
        enqueue: Callable[[Sequence[NewJob]], list[Enqueued]],
        codec: Codec,
    ) -> None:
        self._execute = execute
        self._enqueue = enqueue
        self.codec = codec
        self.enqueued = 0

    def execute(self, sql: LiteralString, params: Mapping[str, Any]) -> Rows:
        """Run one statement (from a named-query file) in this transaction."""
        return self._execute(sql, params)

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]:
        """Insert jobs (with their ``enqueued`` events) in this transaction."""
        out = self._enqueue(jobs) if jobs else []
        self.enqueued += len(out)
        return out
