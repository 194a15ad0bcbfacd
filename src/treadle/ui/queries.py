"""Aggregates for the dashboard and metrics pages, computed by the store (ADR 0022).

Every attempt that ends writes a usage row (``treadle_attempt_usage``) with its outcome,
run time and wait; the charts are grouped counts and nearest-rank percentiles over those
rows, bucketed in SQL (``usage_queries.sql``: ``chart_counts``, ``chart_percentiles``,
``chart_totals``). Nothing is sampled: a busy window costs the database an index range
scan, not a page view of thousands of job rows.

Counted are attempts that ended their job (succeeded or failed): reported by a worker, or
failed by the reaper (its worker died or its lease lapsed), whose row the reap writes with
its guarded update (error class ``lease_lost``, wall time from start to reap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from treadle.store import Store
from treadle.store.extension import ExtensionSql

WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
}
BUCKETS = 60


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
    truncated: bool = False  # kept for the page and API shape: never sampled any more
    totals: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window, "bucket_seconds": self.bucket_seconds, "x": self.x,
            "succeeded": self.succeeded, "failed": self.failed,
            "p50": self.p50, "p95": self.p95, "p99": self.p99,
            "error_classes": self.error_classes, "truncated": self.truncated,
            "totals": self.totals,
        }


def _sql(store: Store) -> ExtensionSql:
    return ExtensionSql(store, "usage_queries.sql")


def _params(start: float, step: int, tenant: str | None) -> dict[str, Any]:
    return {"start": start, "step": step, "tenant": tenant}


def series(store: Store, *, tenant: str | None, window: str, now: datetime) -> Series:
    span = WINDOWS.get(window, WINDOWS["1h"])
    window = window if window in WINDOWS else "1h"
    step = max(1, int(span.total_seconds()) // BUCKETS)
    start = int(now.timestamp()) - step * BUCKETS
    sql = _sql(store)
    params = _params(float(start), step, tenant)
    out = Series(window=window, bucket_seconds=step)
    out.x = [start + step * (i + 1) for i in range(BUCKETS)]
    out.succeeded = [0] * BUCKETS
    out.failed = [0] * BUCKETS
    classes: dict[str, list[int]] = {}
    for r in sql.run("chart_counts", params):
        i = min(BUCKETS - 1, max(0, int(r["b"])))
        if r["outcome"] == "succeeded":
            out.succeeded[i] += int(r["n"])
        else:
            out.failed[i] += int(r["n"])
            cls = str(r["error_class"] or "unknown")
            classes.setdefault(cls, [0] * BUCKETS)[i] += int(r["n"])
    pct: dict[int, Mapping[str, Any]] = {}
    for r in sql.run("chart_percentiles", params):
        pct[min(BUCKETS - 1, max(0, int(r["b"])))] = r
    for i in range(BUCKETS):
        pr = pct.get(i)
        out.p50.append(_ms(pr["p50"]) if pr else None)
        out.p95.append(_ms(pr["p95"]) if pr else None)
        out.p99.append(_ms(pr["p99"]) if pr else None)
    out.error_classes = dict(sorted(classes.items()))
    out.totals = _totals(sql, params, out.succeeded, out.failed, classes)
    return out


def window_totals(store: Store, *, tenant: str | None, since: datetime) -> dict[str, Any]:
    """The dashboard's "last hour" tiles: the same figures as a chart's totals."""
    sql = _sql(store)
    span = 10 * 365 * 24 * 3600  # one bucket for the whole window
    params = _params(since.timestamp(), span, tenant)
    ok = failed = 0
    classes: dict[str, list[int]] = {}
    for r in sql.run("chart_counts", params):
        if r["outcome"] == "succeeded":
            ok += int(r["n"])
        else:
            failed += int(r["n"])
            classes.setdefault(str(r["error_class"] or "unknown"), [0])[0] += int(r["n"])
    return _totals(sql, params, [ok], [failed], classes)


def _totals(sql: ExtensionSql, params: dict[str, Any], succeeded: list[int],
            failed: list[int], classes: dict[str, list[int]]) -> dict[str, Any]:
    """Whole-window summary, rendered server-side so the numbers exist without JavaScript."""
    ok, bad = sum(succeeded), sum(failed)
    rows = sql.run("chart_totals", params)
    t: dict[str, Any] = dict(rows[0]) if rows else {}
    by_class = sorted(((k, sum(v)) for k, v in classes.items()), key=lambda kv: (-kv[1], kv[0]))
    return {
        "finished": ok + bad,
        "succeeded": ok,
        "failed": bad,
        "failure_rate": (bad / (ok + bad)) if ok + bad else None,
        "run_p50_ms": _ms(t.get("run_p50")),
        "run_p95_ms": _ms(t.get("run_p95")),
        "run_p99_ms": _ms(t.get("run_p99")),
        "wait_p50_ms": _ms(t.get("wait_p50")),
        "wait_p95_ms": _ms(t.get("wait_p95")),
        "error_classes": dict(by_class),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) * 1000, 1)
