"""Turn any exception into a classified :class:`ErrorInfo` before retrying."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping

from treadle.core import storable
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
    message = _text(exc)
    detail = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "traceback": _traceback(exc)[-MAX_TRACEBACK:],
    }
    if isinstance(exc, TreadleError):
        if exc.detail is not None:
            # User code chooses the detail: keep a storable copy (ADR 0006).
            detail["info"] = storable.repair(exc.detail)
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        return ErrorInfo(exc.error_class, _text(exc.message), detail, retry_after)
    if overrides:
        for exc_type, cls in overrides.items():
            if isinstance(exc, exc_type):
                return ErrorInfo(cls, message, detail)
    if isinstance(exc, TimeoutError):
        return ErrorInfo(ErrorClass.TIMEOUT, message, detail)
    if isinstance(exc, MemoryError):
        return ErrorInfo(ErrorClass.RESOURCE_EXHAUSTED, message, detail)
    return ErrorInfo(default, message, detail)


def _text(value: object) -> str:
    """``str(value)`` made storable; a hostile ``__str__`` cannot stop the classification."""
    try:
        text = str(value)
    except Exception:
        text = ""
    return storable.clean_text((text or type(value).__name__)[:MAX_MESSAGE])


def _traceback(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        text = f"<traceback of {type(exc).__name__} could not be formatted>"
    return storable.clean_text(text[-MAX_TRACEBACK:])
