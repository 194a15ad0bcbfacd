"""OpenTelemetry spans for Treadle (extra ``otel``; ADR 0021).

Imported only when tracing is asked for (``treadle.tracing.otel_tracing``, the CLI's
``--otel`` or ``OTEL_*`` variables); nothing else in Treadle imports OpenTelemetry.

Spans: ``submit <task>`` (producer) around an enqueue, child of the submitting request's
traceparent or of the span current at ``defer``, and its context is what the job stores;
``claim <task>`` per claimed job, timed by the claim call that took it; ``run <task>``
(consumer) around the attempt, current while the code runs, so a workflow's ``step
<name>`` spans, a callback's ``callback delivery`` span and the user's own spans nest
under it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import replace

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from treadle.core import traceparent as tp
from treadle.core.job import Job, NewJob
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.tracing import Attributes, SpanHandle, Tracing

log = logging.getLogger("treadle.otel")
_PROPAGATOR = TraceContextTextMapPropagator()
SCOPE = "treadle"


def _parent(traceparent: str | None) -> otel_context.Context | None:
    """The context a stored traceparent names (None: start a new trace)."""
    if traceparent is None or tp.parse(traceparent) is None:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _traceparent_of(span: Span) -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return tp.parse(carrier.get("traceparent"))


class _Handle(SpanHandle):
    def __init__(self, span: Span) -> None:
        self.span = span

    def set(self, key: str, value: str | int | float | bool) -> None:
        self.span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self.span.set_status(Status(StatusCode.ERROR, message[:1000]))

    def outcome(self, outcome: Outcome) -> None:
        self.span.set_attribute("treadle.outcome", outcome.kind.value)
        if outcome.error is not None:
            self.span.set_attribute("treadle.error_class", outcome.error.error_class.value)
        if outcome.kind in (OutcomeKind.FAILED, OutcomeKind.RETRY):
            message = outcome.error.message if outcome.error is not None else "failed"
            self.fail(message)


def _job_attributes(job: Job, worker: str) -> dict[str, str | int]:
    return {"treadle.job_id": job.id, "treadle.attempt": job.attempt, "treadle.queue": job.queue,
            "treadle.task": job.task, "treadle.kind": job.kind.value,
            "treadle.tenant": job.tenant, "treadle.worker": worker}


class OtelTracing(Tracing):
    """Spans through an OpenTelemetry ``TracerProvider``.

    ``provider``: use this one (tests pass one with an in-memory exporter); else one is
    built here with ``exporter`` (default: OTLP over HTTP, configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables the CLI passes through, or ``endpoint``) behind a
    batching processor, for ``service_name``.
    """

    enabled = True

    def __init__(
        self,
        *,
        provider: TracerProvider | None = None,
        exporter: SpanExporter | None = None,
        endpoint: str | None = None,
        service_name: str = "treadle",
    ) -> None:
        self._owns = provider is None
        if provider is None:
            if exporter is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
            provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            provider.add_span_processor(BatchSpanProcessor(exporter))
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE)

    @contextlib.contextmanager
    def submit(self, jobs: Sequence[NewJob]) -> Iterator[Sequence[NewJob]]:
        if not jobs:
            yield jobs
            return
        given = jobs[0].traceparent
        parent = _parent(given)  # None: the current context (the caller's span, if any)
        attrs: dict[str, str | int] = {"treadle.task": jobs[0].task,
                                       "treadle.queue": jobs[0].queue,
                                       "treadle.tenant": jobs[0].tenant,
                                       "treadle.jobs": len(jobs)}
        with self.tracer.start_as_current_span(
            f"submit {jobs[0].task}", context=parent, kind=SpanKind.PRODUCER, attributes=attrs,
        ) as span:
            mine = _traceparent_of(span)
            # Jobs that named another trace of their own keep it; the rest join this span.
            yield [replace(nj, traceparent=mine) if nj.traceparent in (None, given) else nj
                   for nj in jobs]

    def claimed(self, worker: str, jobs: Sequence[Job], start_ns: int, end_ns: int) -> None:
        for job in jobs:
            parent = _parent(job.traceparent)
            if parent is None:
                continue  # an untraced job: its run span starts the trace instead
            span = self.tracer.start_span(
                f"claim {job.task}", context=parent, kind=SpanKind.CONSUMER,
                attributes={**_job_attributes(job, worker), "treadle.batch": len(jobs)},
                start_time=start_ns,
            )
            span.end(end_time=end_ns)

    @contextlib.contextmanager
    def run(self, job: Job, worker: str) -> Iterator[SpanHandle]:
        with self.tracer.start_as_current_span(
            f"run {job.task}", context=_parent(job.traceparent), kind=SpanKind.CONSUMER,
            attributes=_job_attributes(job, worker), record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield _Handle(span)

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes) -> Iterator[SpanHandle]:
        with self.tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield _Handle(span)

    def current_traceparent(self) -> str | None:
        span = trace.get_current_span()
        if not span.get_span_context().is_valid:
            return None
        return _traceparent_of(span)

    def shutdown(self) -> None:
        if self._owns:
            self.provider.shutdown()
