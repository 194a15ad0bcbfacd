"""Prometheus metrics: store-derived gauges, API counters, and a worker observer.

Gauges about jobs and queues are read from the store at scrape time, so they
are true for the whole deployment whatever process serves ``/metrics``.
Counters and histograms of workers (claims, run time, retries, lease
expiries, heartbeats) come from :class:`PrometheusObserver`; they describe the
workers running in *this* process (``treadle up``); separate worker processes
would expose their own.

Queue and tenant names are chosen by whoever submits, and every label value is a series
kept for the life of the process: a tenant naming a fresh queue per job would grow
``/metrics`` and the process's memory without bound. So each process gives the first
``max_label_values`` queues (and tenants) series of their own and counts the rest under
``(other)``; scrape-time gauges show the busiest queues and fold the rest the same way.
HTTP methods outside the standard ones are counted as ``other``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from treadle.core.job import Job, QueueInfo
from treadle.core.lease import ReapResult
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.observe import Observer

if TYPE_CHECKING:
    from treadle.app import Treadle

log = logging.getLogger("treadle.api.metrics")
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DURATION = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
MAX_LABEL_VALUES = 200  # queues (and tenants) with series of their own, per process
OTHER = "(other)"  # the series of those past the cap
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Capped:
    """A label's values: the first ``limit`` distinct ones pass, later ones are OTHER."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen or len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


class _StoreCollector(Collector):
    def __init__(self, treadle: Treadle, limit: int) -> None:
        self.treadle = treadle
        self.limit = limit

    def collect(self) -> Iterator[Metric]:
        try:
            queues = _fold_queues(self.treadle.store.queues(), self.limit)
            totals = self.treadle.store.count_by_status()
            workers = self.treadle.store.worker_processes()
        except Exception as exc:  # a scrape must not fail because the DB blinked
            log.warning("metrics: store unavailable: %r", exc)
            up = GaugeMetricFamily("treadle_store_up", "1 if the store answered the scrape")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("treadle_store_up", "1 if the store answered the scrape")
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("treadle_jobs", "Jobs by queue and state (live views)",
                                 labels=["queue", "state"])
        failed = GaugeMetricFamily("treadle_queue_failed_last_hour",
                                   "Jobs failed in the last hour", labels=["queue"])
        done = GaugeMetricFamily("treadle_queue_succeeded_last_hour",
                                 "Jobs succeeded in the last hour", labels=["queue"])
        paused = GaugeMetricFamily("treadle_queue_paused", "1 if the queue is paused",
                                   labels=["queue"])
        for q in queues:
            for state, n in (("queued", q.queued), ("scheduled", q.scheduled),
                             ("retrying", q.retrying), ("running", q.running)):
                jobs.add_metric([q.name, state], n)
            failed.add_metric([q.name], q.failed_last_hour)
            done.add_metric([q.name], q.succeeded_last_hour)
            paused.add_metric([q.name], 1 if q.paused else 0)
        yield from (jobs, failed, done, paused)
        by_status = GaugeMetricFamily("treadle_jobs_by_status", "All jobs by status",
                                      labels=["status"])
        for status, n in sorted(totals.items()):
            by_status.add_metric([status], n)
        yield by_status
        now = time.time()
        beat = GaugeMetricFamily("treadle_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat", labels=["worker"])
        for w in workers:
            beat.add_metric([w.id], max(0.0, now - w.last_heartbeat.timestamp()))
        yield beat
        yield from _usage_metrics(self.treadle, self.limit)


def _fold_queues(queues: list[QueueInfo], limit: int) -> list[QueueInfo]:
    """The ``limit`` busiest queues as they are, the others summed as one ``OTHER``."""
    if len(queues) <= limit:
        return queues

    def load(q: QueueInfo) -> tuple[int, ...]:
        return (q.queued + q.running + q.retrying + q.scheduled,
                q.failed_last_hour + q.succeeded_last_hour)

    ranked = sorted(queues, key=load, reverse=True)
    rest = ranked[limit:]
    other = replace(
        rest[0], name=OTHER, paused=False,
        **{f: sum(getattr(q, f) for q in rest) for f in _QUEUE_COUNTS})
    return [*ranked[:limit], other]


_QUEUE_COUNTS = ("queued", "scheduled", "retrying", "running", "failed_last_hour",
                 "succeeded_last_hour")


# Store-derived: the last hour's usage per tenant and queue (ADR 0022), whatever process
# ran the attempts. Local workers' totals since start are the counters below.
_USAGE_GAUGES = (
    ("attempts", "treadle_usage_attempts_last_hour", "Attempts that ended in the last hour"),
    ("cpu_seconds", "treadle_usage_cpu_seconds_last_hour", "CPU seconds of those attempts"),
    ("wall_seconds", "treadle_usage_wall_seconds_last_hour", "Wall seconds of those attempts"),
    ("result_bytes", "treadle_usage_result_bytes_last_hour", "Bytes of their results"),
    ("log_bytes", "treadle_usage_log_bytes_last_hour", "Bytes of their log lines"),
    ("tokens_in", "treadle_usage_tokens_in_last_hour", "Model input tokens"),
    ("tokens_out", "treadle_usage_tokens_out_last_hour", "Model output tokens"),
    ("cost_usd", "treadle_usage_cost_usd_last_hour", "Model cost in US dollars"),
)


def _usage_metrics(treadle: Treadle, limit: int) -> Iterator[Metric]:
    from treadle.store.usage import UsageReader  # extension SQL: only SQL stores have it

    try:
        rows = UsageReader(treadle.store).by_tenant_and_queue(
            since=datetime.now(UTC) - timedelta(hours=1))
    except Exception as exc:  # a store without usage tables must not fail the scrape
        log.warning("metrics: usage unavailable: %r", exc)
        return
    # The busiest (tenant, queue) pairs as they are, the rest summed under OTHER.
    ranked = sorted(rows, key=lambda r: float(r["attempts"] or 0), reverse=True)
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for i, r in enumerate(ranked):
        pair = (str(r["tenant"]), str(r["queue"])) if i < limit else (OTHER, OTHER)
        sums = pairs.setdefault(pair, dict.fromkeys((k for k, _, _ in _USAGE_GAUGES), 0.0))
        for key in sums:
            sums[key] += float(r[key] or 0)
    for key, name, text in _USAGE_GAUGES:
        family = GaugeMetricFamily(name, text, labels=["tenant", "queue"])
        for (tenant, queue), sums in pairs.items():
            family.add_metric([tenant, queue], sums[key])
        yield family


class PrometheusObserver(Observer):
    """Pass to ``Worker(observer=...)`` so worker activity shows on ``/metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def claimed(self, worker: str, jobs: list[Job], seconds: float) -> None:
        self.m.claim_latency.observe(seconds)

    def finished(self, worker: str, job: Job, outcome: Outcome, seconds: float) -> None:
        m = self.m
        queue = m.queue(job.queue)
        m.completed.labels(queue, outcome.kind.value).inc()
        m.duration.labels(queue).observe(seconds)
        used = outcome.usage
        if used is not None:  # ADR 0022
            tenant = m.tenant(job.tenant)
            m.cpu.labels(tenant, queue).inc(used.cpu_seconds or 0.0)
            m.tokens.labels(tenant, queue, "in").inc(used.tokens_in)
            m.tokens.labels(tenant, queue, "out").inc(used.tokens_out)
            m.cost.labels(tenant, queue).inc(used.cost_usd)
        if outcome.kind is OutcomeKind.RETRY and outcome.error is not None:
            m.retries.labels(queue, outcome.error.error_class.value).inc()

    def heartbeat(self, worker: str, leases: int) -> None:
        self.m.heartbeats.labels(worker).inc()

    def reaped(self, result: ReapResult) -> None:
        for action, n in (("requeued", result.requeued), ("failed", result.failed),
                          ("cancelled", result.cancelled), ("quarantined", result.quarantined)):
            if n:
                self.m.lease_expiries.labels(action).inc(n)


    def pruned(self, count: int) -> None:
        self.m.pruned.inc(count)


class Metrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, max_label_values: int = MAX_LABEL_VALUES) -> None:
        self.max_label_values = max_label_values
        self.queue = _Capped(max_label_values)  # a queue's label value (module docstring)
        self.tenant = _Capped(max_label_values)
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.enqueued = Counter("treadle_jobs_enqueued", "Jobs enqueued through the API",
                                ["queue"], registry=r)
        self.completed = Counter("treadle_jobs_completed", "Attempts finished by local workers",
                                 ["queue", "outcome"], registry=r)
        self.retries = Counter("treadle_job_retries", "Retries scheduled, by error class",
                               ["queue", "error_class"], registry=r)
        self.lease_expiries = Counter("treadle_lease_expiries", "Expired leases reaped",
                                      ["action"], registry=r)
        self.pruned = Counter("treadle_jobs_pruned", "Finished jobs deleted by retention",
                              registry=r)
        self.heartbeats = Counter("treadle_worker_heartbeats", "Worker heartbeats",
                                  ["worker"], registry=r)
        self.claim_latency = Histogram("treadle_claim_latency_seconds",
                                       "Time of one claim call", buckets=_LATENCY, registry=r)
        self.duration = Histogram("treadle_job_duration_seconds", "Attempt run time",
                                  ["queue"], buckets=_DURATION, registry=r)
        self.cpu = Counter("treadle_attempt_cpu_seconds", "CPU seconds of attempts run by "
                           "local workers", ["tenant", "queue"], registry=r)
        self.tokens = Counter("treadle_attempt_model_tokens", "Model tokens of attempts run "
                              "by local workers", ["tenant", "queue", "direction"], registry=r)
        self.cost = Counter("treadle_attempt_cost_usd", "Model cost (USD) of attempts run by "
                            "local workers", ["tenant", "queue"], registry=r)
        self.http_requests = Counter("treadle_http_requests", "HTTP requests",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("treadle_http_request_duration_seconds",
                                      "HTTP request latency", ["method", "route"],
                                      buckets=_LATENCY, registry=r)
        self._collector: _StoreCollector | None = None

    def bind(self, treadle: Treadle) -> None:
        if self._collector is None:
            self._collector = _StoreCollector(treadle, self.max_label_values)
            self.registry.register(self._collector)

    def count_enqueued(self, queue: str) -> None:
        """A job created through the API (not a replayed idempotent submission)."""
        self.enqueued.labels(self.queue(queue)).inc()

    def observer(self) -> PrometheusObserver:
        return PrometheusObserver(self)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Pure ASGI (no BaseHTTPMiddleware): adds microseconds, not a task hop."""

        async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = {"code": 500}

            async def send_wrapper(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                path = getattr(route, "path", "unmatched")
                method = scope.get("method", "")
                method = method if method in _METHODS else "other"
                self.http_requests.labels(method, path, str(status["code"])).inc()
                self.http_latency.labels(method, path).observe(time.perf_counter() - start)

        return wrapped
