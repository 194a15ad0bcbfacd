"""The tracing seam (ADR 0021): what Treadle reports as spans, with no tracing library.

The core calls a :class:`Tracing`; the default does nothing and imports nothing.
``treadle.otel.OtelTracing`` (extra ``otel``) turns the calls into OpenTelemetry spans:
``submit`` where jobs are enqueued, ``claim`` and ``run`` in the worker, a span per
workflow step and per callback delivery. A job carries the W3C ``traceparent`` it was
submitted under (``core/traceparent.py``), so its spans join the submitter's trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from treadle.core.errors import MissingExtra

if TYPE_CHECKING:
    from treadle.core.job import Job, NewJob
    from treadle.core.outcome import Outcome

Attributes = Mapping[str, str | int | float | bool]


class SpanHandle:
    """What code inside a span may add to it; the no-op one drops everything."""

    def set(self, key: str, value: str | int | float | bool) -> None:
        """Set one attribute."""

    def fail(self, message: str) -> None:
        """Mark the span as failed."""

    def outcome(self, outcome: Outcome) -> None:
        """Record how the attempt ended (run spans)."""


NULL_SPAN = SpanHandle()
# A nullcontext holds no state between uses, so one serves every no-op span.
_NULL_SPAN_CM: AbstractContextManager[SpanHandle] = contextlib.nullcontext(NULL_SPAN)


class Tracing:
    """No-op base; must be thread-safe and never raise into the worker."""

    enabled = False

    @contextlib.contextmanager
    def submit(self, jobs: Sequence[NewJob]) -> Iterator[Sequence[NewJob]]:
        """Around an enqueue: yields the jobs with the traceparent each should store."""
        yield jobs

    def claimed(self, worker: str, jobs: Sequence[Job], start_ns: int, end_ns: int) -> None:
        """A claim call (from ``start_ns`` to ``end_ns``, epoch nanoseconds) took ``jobs``."""

    def run(self, job: Job, worker: str) -> AbstractContextManager[SpanHandle]:
        """Around one attempt's code; the span is current inside it."""
        return _NULL_SPAN_CM  # off: no generator and context manager built per attempt

    def span(self, name: str, attributes: Attributes) -> AbstractContextManager[SpanHandle]:
        """A child of the current span (a workflow step, a callback delivery)."""
        return _NULL_SPAN_CM

    def current_traceparent(self) -> str | None:
        """The W3C traceparent of the current span, to pass on (an outgoing callback)."""
        return None

    def shutdown(self) -> None:
        """Flush and stop exporting."""


NULL_TRACING = Tracing()


def otel_tracing(**options: Any) -> Tracing:
    """An OpenTelemetry :class:`Tracing` (see ``treadle.otel.OtelTracing`` for options).

    Raises ``MissingExtra`` naming ``treadle[otel]`` when OpenTelemetry is not installed."""
    try:
        from treadle.otel import OtelTracing
    except ImportError as exc:
        raise MissingExtra("otel", exc.name or "opentelemetry-sdk") from None
    return OtelTracing(**options)
