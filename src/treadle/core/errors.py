"""One exception root for everything Treadle raises or classifies.

Every failure that reaches the store is first turned into an :class:`ErrorInfo`
(class, message, detail) by :func:`treadle.core.classify.classify`. The error
class decides retry, backoff and what the user sees (docs/glossary.md: error class).

Task code may raise these classes explicitly to say how a failure should be
treated, e.g. ``raise Permanent("bad image")`` or ``raise RateLimited(retry_after=30)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ErrorClass(enum.StrEnum):
    """The classification of a failure (snake_case names are the wire format)."""

    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    PERMANENT = "permanent"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    CANCELLED = "cancelled"
    SANDBOX_VIOLATION = "sandbox_violation"
    LEASE_LOST = "lease_lost"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        ErrorClass.TRANSIENT,
        ErrorClass.RATE_LIMITED,
        ErrorClass.TIMEOUT,
        ErrorClass.RESOURCE_EXHAUSTED,
        ErrorClass.LEASE_LOST,
    }
)


class TreadleError(Exception):
    """Root of every Treadle exception.

    ``error_class`` says how the failure is treated; ``detail`` carries
    structured, JSON-serialisable context shown to users.
    """

    error_class: ErrorClass = ErrorClass.PERMANENT

    def __init__(self, message: str = "", *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.error_class.retryable


class Transient(TreadleError):
    """A failure that may well succeed if tried again (network blip, 5xx)."""

    error_class = ErrorClass.TRANSIENT


class RateLimited(TreadleError):
    """The far side asked us to slow down; ``retry_after`` (seconds) is honoured."""

    error_class = ErrorClass.RATE_LIMITED

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, detail: Any = None
    ) -> None:
        super().__init__(message or "rate limited", detail=detail)
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int | float)
            or not 0 <= retry_after < float("inf")  # NaN fails this too
        ):
            raise ConfigurationError("retry_after must be a finite number of seconds >= 0")
        self.retry_after = retry_after


class Timeout(TreadleError):
    """The attempt ran past its time budget."""

    error_class = ErrorClass.TIMEOUT


class ResourceExhausted(TreadleError):
    """Memory, CPU, output size or another resource limit was hit."""

    error_class = ErrorClass.RESOURCE_EXHAUSTED


class Permanent(TreadleError):
    """Retrying cannot help; the job fails now."""

    error_class = ErrorClass.PERMANENT


class InvalidInput(TreadleError):
    """The job's input (or submitted code) is malformed; never retried."""

    error_class = ErrorClass.INVALID_INPUT


class InvalidOutput(TreadleError):
    """What an attempt produced (result, continuation payload) cannot be stored; never
    retried. The worker fails that job and carries on (ADR 0006)."""

    error_class = ErrorClass.INVALID_OUTPUT


class Cancelled(TreadleError):
    """The job was cancelled by a user."""

    error_class = ErrorClass.CANCELLED


class SandboxViolation(TreadleError):
    """Sandboxed code tried something forbidden (syscall, escape); never retried."""

    error_class = ErrorClass.SANDBOX_VIOLATION


class LeaseLost(TreadleError):
    """A write about a running job carried a stale lease token and was refused."""

    error_class = ErrorClass.LEASE_LOST


# Errors about using Treadle itself (not job outcomes).


class ConfigurationError(TreadleError, ValueError):
    """Bad configuration or arguments given to Treadle (URL, options)."""

    error_class = ErrorClass.INVALID_INPUT


class UnknownTask(TreadleError, LookupError):
    """No task with that name is registered."""

    error_class = ErrorClass.INVALID_INPUT


class JobNotFound(TreadleError, LookupError):
    """No job with that id (for this tenant)."""

    error_class = ErrorClass.INVALID_INPUT


class IllegalTransition(TreadleError):
    """A lifecycle transition that the state machine does not allow."""

    error_class = ErrorClass.PERMANENT


class SchemaTooNew(TreadleError):
    """The database schema is newer than this code understands."""

    error_class = ErrorClass.PERMANENT


class StoreUnavailable(TreadleError):
    """The database cannot be reached right now."""

    error_class = ErrorClass.TRANSIENT


class StoreError(TreadleError):
    """The database refused a statement (not a lost connection: that is StoreUnavailable).

    Stores raise it in place of their driver's exceptions, so callers (the CLI, the API)
    never import a driver to tell a database failure from a bug."""

    error_class = ErrorClass.PERMANENT


class AccessDenied(TreadleError):
    """The API refused the credentials (401) or their scope (403); the remote client
    raises it (``treadle.client``)."""

    error_class = ErrorClass.PERMANENT


class BadResponse(TreadleError):
    """A server's answer is not what the API promises (not JSON, over the size cap, cut
    off, not the documented shape); the remote client raises it instead of hanging or
    guessing."""

    error_class = ErrorClass.TRANSIENT


class ValueOutOfRange(InvalidInput):
    """A value the database cannot represent (a number beyond 64 bits, a date past 9999);
    nothing was written."""


class MissingExtra(TreadleError, ImportError):
    """An optional dependency is not installed; names the extra to install."""

    error_class = ErrorClass.PERMANENT

    def __init__(self, extra: str, package: str) -> None:
        super().__init__(
            f"{package} is not installed: install it with `pip install 'treadle[{extra}]'`",
            detail={"extra": extra, "package": package},
        )
        self.extra = extra


@dataclass(frozen=True)
class ErrorInfo:
    """A classified failure as it is stored and shown (the job JSON's ``error``, ADR 0301)."""

    error_class: ErrorClass
    message: str
    detail: Any = None
    retry_after: float | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"class": self.error_class.value, "message": self.message, "detail": self.detail}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(ErrorClass(data["class"]), str(data.get("message", "")), data.get("detail"))
