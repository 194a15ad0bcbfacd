"""Treadle: durable job execution. The database is the queue.

>>> from treadle import Treadle
>>> app = Treadle("sqlite:///treadle.db")
>>> @app.task(queue="default", retries=5, timeout=30)
... def resize(image_key: str, width: int) -> dict: ...
>>> job = resize.defer(image_key="k", width=320)  # doctest: +SKIP
>>> job.wait(timeout=10).result  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from treadle.app import JobHandle, Task, Treadle, WaitTimeout
from treadle.context import Continue, JobContext
from treadle.core.errors import (
    AccessDenied,
    BadResponse,
    Cancelled,
    ErrorClass,
    InvalidInput,
    InvalidOutput,
    Permanent,
    RateLimited,
    ResourceExhausted,
    SandboxViolation,
    Timeout,
    Transient,
    TreadleError,
)
from treadle.core.job import Job, JobEvent, JobLog
from treadle.core.lifecycle import JobStatus
from treadle.core.retry import RetryPolicy
from treadle.core.usage import Usage
from treadle.tracing import Tracing, otel_tracing

if TYPE_CHECKING:
    from treadle.client import AsyncClient, Client

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The remote client needs pydantic (the `client` extra): imported on first use only.
    if name in ("Client", "AsyncClient"):
        import treadle.client

        return getattr(treadle.client, name)
    raise AttributeError(f"module 'treadle' has no attribute {name!r}")


__all__ = [
    "AccessDenied",
    "AsyncClient",
    "BadResponse",
    "Cancelled",
    "Client",
    "Continue",
    "ErrorClass",
    "InvalidInput",
    "InvalidOutput",
    "Job",
    "JobContext",
    "JobEvent",
    "JobHandle",
    "JobLog",
    "JobStatus",
    "Permanent",
    "RateLimited",
    "ResourceExhausted",
    "RetryPolicy",
    "SandboxViolation",
    "Task",
    "Timeout",
    "Tracing",
    "Transient",
    "Treadle",
    "TreadleError",
    "Usage",
    "WaitTimeout",
    "otel_tracing",
]
