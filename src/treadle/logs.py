"""Structured logs (structlog): JSON when not on a terminal, readable when on one.

Libraries Treadle drives (the PostgreSQL driver and its pool) log through the standard
``logging`` module; :func:`route_stdlib` brings their records into structlog too, so an
application that never configured ``logging`` does not get them printed raw on stderr
by Python's last-resort handler.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

import structlog


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Called once at the edge (CLI); library code only asks for loggers."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    # A library must stay quiet unless asked: if nobody configured structlog yet,
    # default to warnings on stderr (the CLI and applications configure their own).
    if not structlog.is_configured():
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
    return structlog.get_logger(name)


class _ToStructlog(logging.Handler):
    """Forwards a library's stdlib log records to structlog, optionally at a lower level."""

    def __init__(self, demote: Mapping[int, int]) -> None:
        super().__init__()
        self._demote = dict(demote)

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return  # the application set up stdlib logging: the record reaches it there
        try:
            level = self._demote.get(record.levelno, record.levelno)
            event = record.getMessage()
            fields: dict[str, Any] = {}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = repr(record.exc_info[1])
            get_logger(record.name).log(level, event, **fields)
        except Exception:
            self.handleError(record)


_routed: set[str] = set()
_routed_lock = threading.Lock()


def route_stdlib(name: str, *, demote: Mapping[int, int] | None = None) -> None:
    """Send stdlib ``logging`` records of logger ``name`` through structlog (idempotent).

    ``demote`` maps a level to the one it is logged at, for a library that warns about
    conditions Treadle handles itself. Records still propagate, so an application that
    configured the root logger keeps receiving them (and this handler then stays quiet).
    """
    with _routed_lock:
        if name in _routed:
            return
        _routed.add(name)
        logging.getLogger(name).addHandler(_ToStructlog(demote or {}))
