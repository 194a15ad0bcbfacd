"""Treadle: durable job execution. The database is the queue.

>>> from treadle import Treadle
>>> app = Treadle("sqlite:///treadle.db")
>>> @app.task(queue="default", retries=5, timeout=30)
... def resize(image_key: str, width: int) -> dict: ...
>>> job = resize.defer(image_key="k", width=320)  # doctest: +SKIP
>>> job.wait(timeout=10).result  # doctest: +SKIP
"""

from treadle.app import JobHandle, Task, Treadle, WaitTimeout
from treadle.context import Continue, JobContext
from treadle.core.errors import (
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

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
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
