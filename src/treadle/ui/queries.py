"""Aggregates for the dashboard and metrics pages, computed from the Store's public reads.

The store has no time-bucketed aggregate query, so these read a *bounded* recent window of
finished jobs through ``list_jobs`` (newest first, cursor-paginated) and bucket them here.
The bound keeps a busy system from turning a page view into a table scan; when it is hit
the result says ``truncated`` and the page shows that it is a sample. A store-side
aggregate (``store.stats(since, bucket_seconds, tenant)``) would remove the bound.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from treadle.core.job import Job
from treadle.core.lifecycle import JobStatus
from treadle.store import JobFilter, Store

MAX_SAMPLE = 5000
PAGE = 500
WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
}
BUCKETS = 60


def finished_in_window(
    store: Store, *, tenant: str | None, since: datetime, max_jobs: int = MAX_SAMPLE
) -> tuple[list[Job], bool]:
    """Succeeded/failed jobs that finished at or after ``since`` (and whether we hit the cap).

    Jobs are found by creation time, so look back one more window: a job created earlier but
    finished inside the window is still counted unless it waited longer than the window.
    """
    span = max(timedelta(minutes=5), datetime.now(since.tzinfo) - since)
    out: list[Job] = []
    before: int | None = None
    scanned = 0
    while scanned < max_jobs:
        page = store.list_jobs(
            JobFilter(
                tenant=tenant, statuses=(JobStatus.SUCCEEDED, JobStatus.FAILED),
                created_after=since - span, before_id=before, limit=min(PAGE, max_jobs - scanned),
            )
        )
        if not page:
            return out, False
        scanned += len(page)
        out.extend(j for j in page if j.finished_at is not None and j.finished_at >= since)
        before = page[-1].id
        if len(page) < PAGE:
            return out, False
    return out, True


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every value shown really happened)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Series:
    """Column-oriented series, the shape uPlot draws directly (x = unix seconds)."""

    window: str
    bucket_seconds: int
    x: list[int] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    p50: list[float | None] = field(default_factory=list)
    p95: list[float | None] = field(default_factory=list)
    p99: list[float | None] = field(default_factory=list)
    error_classes: dict[str, list[int]] = field(default_factory=dict)
    truncated: bool = False
    totals: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window, "bucket_seconds": self.bucket_seconds, "x": self.x,
            "succeeded": self.succeeded, "failed": self.failed,
            "p50": self.p50, "p95": self.p95, "p99": self.p99,
            "error_classes": self.error_classes, "truncated": self.truncated,
            "totals": self.totals,
        }


def run_seconds(job: Job) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return max(0.0, (job.finished_at - job.started_at).total_seconds())


def series(store: Store, *, tenant: str | None, window: str, now: datetime) -> Series:
    span = WINDOWS.get(window, WINDOWS["1h"])
    window = window if window in WINDOWS else "1h"
    step = max(1, int(span.total_seconds()) // BUCKETS)
    start = int(now.timestamp()) - step * BUCKETS
    jobs, truncated = finished_in_window(
        store, tenant=tenant, since=datetime.fromtimestamp(start, now.tzinfo)
    )
    out = Series(window=window, bucket_seconds=step, truncated=truncated)
    out.x = [start + step * (i + 1) for i in range(BUCKETS)]
    out.succeeded = [0] * BUCKETS
    out.failed = [0] * BUCKETS
    durations: list[list[float]] = [[] for _ in range(BUCKETS)]
    classes: dict[str, list[int]] = {}
    for job in jobs:
        assert job.finished_at is not None
        i = min(BUCKETS - 1, max(0, int((job.finished_at.timestamp() - start) // step)))
        if job.status is JobStatus.SUCCEEDED:
            out.succeeded[i] += 1
        else:
            out.failed[i] += 1
            cls = job.error.error_class.value if job.error else "unknown"
            classes.setdefault(cls, [0] * BUCKETS)[i] += 1
        d = run_seconds(job)
        if d is not None:
            durations[i].append(d)
    for bucket in durations:
        bucket.sort()
        out.p50.append(_ms(percentile(bucket, 50)))
        out.p95.append(_ms(percentile(bucket, 95)))
        out.p99.append(_ms(percentile(bucket, 99)))
    out.error_classes = dict(sorted(classes.items()))
    out.totals = totals(jobs)
    return out


def totals(jobs: Sequence[Job]) -> dict[str, Any]:
    """Whole-window summary, rendered server-side so the numbers exist without JavaScript."""
    runs = sorted(d for d in (run_seconds(j) for j in jobs) if d is not None)
    waits = sorted(
        max(0.0, (j.started_at - j.run_at).total_seconds()) for j in jobs if j.started_at
    )
    failed = sum(1 for j in jobs if j.status is JobStatus.FAILED)
    classes = Counter(
        (j.error.error_class.value if j.error else "unknown")
        for j in jobs if j.status is JobStatus.FAILED
    )
    return {
        "finished": len(jobs),
        "succeeded": len(jobs) - failed,
        "failed": failed,
        "failure_rate": (failed / len(jobs)) if jobs else None,
        "run_p50_ms": _ms(percentile(runs, 50)),
        "run_p95_ms": _ms(percentile(runs, 95)),
        "run_p99_ms": _ms(percentile(runs, 99)),
        "wait_p50_ms": _ms(percentile(waits, 50)),
        "wait_p95_ms": _ms(percentile(waits, 95)),
        "error_classes": dict(classes.most_common()),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
