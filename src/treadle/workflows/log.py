"""The replay engine's view of storage: one attempt's step log (ADR 0009).

Every write names the attempt's lease token; a write refused because the lease moved on
raises :class:`~treadle.workflows.model.FencedSignal`. ``SqlStepLog`` implements it over
the stores; unit tests use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from treadle.core.errors import ErrorInfo
from treadle.core.job import NewJob
from treadle.store.base import Transaction
from treadle.workflows.model import ChildState, Step, StepKind

TxWrite = Callable[[Transaction], None]  # writes inside an open store transaction


class StepLog(Protocol):
    def load(self) -> list[Step]:
        """Every stored step of the job, in order (big results not loaded)."""
        ...

    def load_result(self, ref: str) -> Any:
        """A big result stored by reference."""
        ...

    def start(self, seq: int, name: str, kind: StepKind) -> int:
        """Mark the step running (event ``step_started``); returns its attempt number."""
        ...

    def complete(
        self, seq: int, name: str, kind: StepKind, result_json: str, *,
        event_key: str | None = None, event_id: int | None = None,
        started_at: datetime | None = None, also: TxWrite | None = None,
    ) -> None:
        """Checkpoint the result, encoded as JSON text (event ``step_completed``).

        ``started_at``: the run's start was not written yet; write it (a new attempt,
        event ``step_started``) in the same transaction. ``also``: more writes of the
        caller's, run inside that transaction after the checkpoint (an error there rolls
        the checkpoint back with them)."""
        ...

    def fail(self, seq: int, name: str, kind: StepKind, error: ErrorInfo, *,
             started_at: datetime | None = None) -> None:
        """Record the step's failure (event ``step_failed``); a later attempt re-runs it."""
        ...

    def wait(
        self, seq: int, name: str, kind: StepKind, *, wake_at: datetime | None = None,
        event_key: str | None = None, event_after: int = 0, fail_fast: bool = True,
    ) -> None:
        """Mark the step as the one the job waits on, with its wake condition."""
        ...

    def find_event(self, key: str, after: int) -> tuple[int, Any] | None:
        """The first event sent with ``key`` (id above ``after``) since the job was created."""
        ...

    def spawn(
        self, seq: int, name: str, kind: StepKind, jobs: Sequence[NewJob], *,
        fail_fast: bool, completed: bool,
    ) -> list[int]:
        """Enqueue child jobs and record them under the step, atomically: the step is
        then waiting on them, or (``completed``, fire and forget) completed with the
        first child's id as its result."""
        ...

    def children(self, seq: int) -> list[ChildState]:
        """The step's child jobs in input order, with their status and result."""
        ...

    def retried_after_cancel(self, since: datetime) -> bool:
        """Whether the job was cancelled, then retried by hand, at or after ``since``."""
        ...

    def retry_children(self, seq: int) -> int:
        """Re-queue the step's failed or cancelled children; returns how many."""
        ...
