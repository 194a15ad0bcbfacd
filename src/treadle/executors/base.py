"""The seam between the worker (leases, retries) and what actually runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from treadle.context import JobContext
from treadle.core.classify import Overrides
from treadle.core.errors import ErrorClass
from treadle.core.job import Job
from treadle.core.retry import DEFAULT_POLICY, RetryPolicy


@dataclass(frozen=True)
class Runnable:
    """One attempt, ready to run: exactly one of ``call`` / ``acall`` is set."""

    call: Callable[[JobContext], Any] | None = None
    acall: Callable[[JobContext], Awaitable[Any]] | None = None
    retry_policy: RetryPolicy = DEFAULT_POLICY
    error_overrides: Overrides | None = None
    default_error_class: ErrorClass = ErrorClass.TRANSIENT


class Executor(Protocol):
    def prepare(self, job: Job) -> Runnable:
        """Build the attempt; raise a classified TreadleError if it cannot run."""
        ...
