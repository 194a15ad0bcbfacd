"""Turn any exception into a classified :class:`ErrorInfo` before retrying."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping

from treadle.core.errors import ErrorClass, ErrorInfo, RateLimited, TreadleError

# A task may override how foreign exceptions are classified, e.g.
# ``{ValueError: ErrorClass.INVALID_INPUT}``; subclasses match too.
Overrides = Mapping[type[BaseException], ErrorClass]
Classifier = Callable[[BaseException], ErrorInfo]

MAX_MESSAGE = 2000
MAX_TRACEBACK = 8000


def classify(
    exc: BaseException,
    overrides: Overrides | None = None,
    *,
    default: ErrorClass = ErrorClass.TRANSIENT,
) -> ErrorInfo:
    """Classify ``exc``.

    Order: an explicit Treadle error class wins; then per-task overrides; then
    well-known built-ins (``TimeoutError`` → timeout, ``MemoryError`` →
    resource_exhausted); anything else is ``default`` (transient, so an
    unknown failure gets another chance rather than being dropped).
    """
    message = (str(exc) or type(exc).__name__)[:MAX_MESSAGE]
    detail = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "traceback": "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:],
    }
    if isinstance(exc, TreadleError):
        if exc.detail is not None:
            detail["info"] = exc.detail
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return ErrorInfo(exc.error_class, exc.message[:MAX_MESSAGE], detail, retry_after)
    if overrides:
        for exc_type, cls in overrides.items():
            if isinstance(exc, exc_type):
                return ErrorInfo(cls, message, detail)
    if isinstance(exc, TimeoutError):
        return ErrorInfo(ErrorClass.TIMEOUT, message, detail)
    if isinstance(exc, MemoryError):
        return ErrorInfo(ErrorClass.RESOURCE_EXHAUSTED, message, detail)
    return ErrorInfo(default, message, detail)
