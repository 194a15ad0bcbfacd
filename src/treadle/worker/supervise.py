"""Supervision of a worker's threads: an unexpected exception never ends one silently.

A worker thread that dies leaves the process up and looking healthy while no job is
completed any more (ADR 0006). Every thread body runs under :func:`supervised`:
an exception that escapes it is logged with its traceback, reported (so the job in
hand can be failed with a classified error) and the body is started again after a
short, growing pause. Only a normal return ends the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from treadle.logs import get_logger

log = get_logger("treadle.worker")

_FIRST_PAUSE = 0.05
_MAX_PAUSE = 5.0


def supervised(
    name: str,
    body: Callable[[], None],
    *,
    pause: threading.Event,
    on_crash: Callable[[Exception], None] | None = None,
) -> Callable[[], None]:
    """A thread target running ``body`` until it returns; restarts it when it raises.

    ``pause`` is waited on between restarts (a stop event, so shutdown is not delayed;
    the body is restarted even then, because it may own work that must still be
    finished, like the flusher's outcomes). ``on_crash`` is told about the exception.
    """

    def run() -> None:
        delay = _FIRST_PAUSE
        while True:
            try:
                body()
                return
            except Exception as exc:
                log.error("worker thread failed; restarting it", thread=name,
                          error=describe(exc), exc_info=exc)
                if on_crash is not None:
                    try:
                        on_crash(exc)
                    except Exception as inner:  # reporting must not end supervision
                        log.error("reporting a thread failure failed", thread=name,
                                  error=describe(inner), exc_info=inner)
            pause.wait(delay)
            delay = min(delay * 2, _MAX_PAUSE)

    return run


def describe(exc: BaseException) -> str:
    """``repr(exc)`` that cannot itself raise (exceptions may come from user code)."""
    try:
        return repr(exc)
    except Exception:
        return f"<{type(exc).__name__}>"


__all__ = ["describe", "supervised"]
