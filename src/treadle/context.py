"""What a running task can see of its own execution."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from treadle.core.budget import Deadline
from treadle.core.errors import TreadleError
from treadle.core.job import Job
from treadle.core.progress import ProgressState
from treadle.tracing import NULL_SPAN, Attributes, SpanHandle, Tracing

if TYPE_CHECKING:
    from treadle.artifacts.context import JobArtifacts
    from treadle.streams.buffer import StreamWriter
    from treadle.usage import UsageMeter


class Continue(TreadleError):
    """Raise from a task to checkpoint: re-run the job in a fresh attempt with ``payload``.

    Use it when the deadline is near and work remains (docs/glossary.md: continuation). The
    continued attempt does not count against the job's retries.
    """

    def __init__(self, payload: dict[str, Any], message: str = "continued") -> None:
        super().__init__(message)
        self.payload = payload


class Suspend(TreadleError):
    """Raised by an executor (never by user code) to end an attempt in ``waiting``.

    The job keeps no lease and no worker slot; the kind that suspended it wakes it
    through the store when its condition holds (ADR 0009). Does not count as a retry.
    """

    def __init__(self, message: str = "waiting") -> None:
        super().__init__(message)


@dataclass
class JobContext:
    """Passed to tasks registered with ``pass_context=True`` as the ``ctx`` keyword."""

    job: Job
    worker: str
    deadline: Deadline
    cancelled: threading.Event = field(default_factory=threading.Event)
    _log_sink: Callable[[str], None] | None = None
    # Set by the executor that knows the app (the worker does not): see ``artifacts``.
    artifacts_factory: Callable[[Job], JobArtifacts] | None = None
    _stream: StreamWriter | None = None  # the job's live stream (docs/streams.md)
    _usage: UsageMeter | None = None  # what this attempt costs (ADR 0022)
    _tracing: Tracing | None = None  # spans of this attempt (ADR 0021)
    # The latest progress, carried by the worker's heartbeat; stall detection (ADR 0016).
    progress_state: ProgressState = field(default_factory=ProgressState)

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def artifacts(self) -> JobArtifacts:
        """This job's files: ``ctx.artifacts.put(name, path_or_stream)``, ``.get(name)``."""
        if self.artifacts_factory is None:
            from treadle.core.errors import ConfigurationError

            raise ConfigurationError("this job's executor offers no artifacts")
        return self.artifacts_factory(self.job)

    def log(self, message: str) -> None:
        """Append a line to this attempt's job log (stored with the job)."""
        if self._log_sink is not None:
            self._log_sink(str(message))
        if self._stream is not None:
            self._stream.log(str(message))

    def emit(self, kind: str, data: Any = None) -> None:
        """Append an item to this job's live stream (``GET /v1/jobs/{id}/stream``).

        Written with the worker's next batch, numbered per job and marked with this
        attempt. Data that cannot be stored, or is over the per-item cap, is refused here
        with a classified error (``InvalidOutput``, ``ResourceExhausted``)."""
        if self._stream is not None:
            self._stream.emit(kind, data)

    def progress(self, done: float, total: float | None = None,
                 message: str | None = None, *, live: bool = True) -> None:
        """Report progress (``done`` of ``total``) on this job's live stream.

        ``live=False`` for calls in a tight loop (every frame): only the latest value is
        kept, and the worker's next heartbeat writes it (at most one item per beat)."""
        self.progress_state.update(done, total, message, reported=live)
        if live and self._stream is not None:
            self._stream.progress(done, total, message)

    def record_usage(
        self,
        *,
        cpu_seconds: float | None = None,
        peak_memory_bytes: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        """Add to this attempt's usage what the worker cannot see (ADR 0022): CPU spent
        in another process, its peak memory, model tokens and money. Summed per tenant
        and queue in ``GET /v1/usage``; bad numbers are clamped, never raised."""
        if self._usage is not None:
            self._usage.record(cpu_seconds=cpu_seconds, peak_memory_bytes=peak_memory_bytes,
                               tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost_usd)

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> AbstractContextManager[SpanHandle]:
        """A tracing span around a part of this attempt (a child of its run span); a
        no-op unless tracing is on (ADR 0021)."""
        if self._tracing is None:
            return contextlib.nullcontext(NULL_SPAN)
        return self._tracing.span(name, attributes or {})

    def watch_progress(self, stall_seconds: float | None) -> AbstractContextManager[None]:
        """``with ctx.watch_progress(120): ...``: inside the block, the worker fails this
        attempt as ``timeout`` when ``done`` has not moved for ``stall_seconds`` (even if
        the code is stuck in a call that never returns), whatever the job's budget."""
        return self.progress_state.watch(stall_seconds)

    def check(self) -> None:
        """Raise if the job was cancelled or its budget is spent; call it in long loops."""
        from treadle.core.errors import Cancelled

        if self.cancelled.is_set():
            raise Cancelled("job was cancelled")
        self.deadline.check()
