"""Writing an attempt's usage with its outcome, and reading it back summed (ADR 0022).

The write rides in the store's ``complete`` (one ``executemany`` per batch on SQLite,
one more CTE of the one PostgreSQL statement), so usage is recorded exactly when an
outcome is accepted: a refused (zombie) outcome records none, a replayed one none twice
(the key is ``(job_id, attempt)``). Reads are extension SQL (``usage_queries.sql``), not
part of the Store protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from treadle.core.errors import InvalidInput
from treadle.core.outcome import Outcome
from treadle.store.base import Store
from treadle.store.extension import ExtensionSql

GroupBy = Literal["tenant", "queue"]
GROUPS: tuple[GroupBy, ...] = ("tenant", "queue")


def usage_fields(oc: Outcome) -> dict[str, Any] | None:
    """The usage row's values (without job columns), or None when nothing was measured."""
    if oc.usage is None:
        return None
    return {
        **oc.usage.clean().to_json(),
        "outcome": oc.kind.value,
        "error_class": oc.error.error_class.value if oc.error is not None else None,
    }


# The usage columns PostgreSQL's ``finish_many`` takes as typed arrays, by parameter.
_PG_ARRAYS = (("u_outcome", "outcome"), ("u_error_class", "error_class"),
              ("u_wall", "wall_seconds"), ("u_cpu", "cpu_seconds"),
              ("u_peak", "peak_memory_bytes"), ("u_result", "result_bytes"),
              ("u_log", "log_bytes"), ("u_wait", "wait_seconds"),
              ("u_tokens_in", "tokens_in"), ("u_tokens_out", "tokens_out"),
              ("u_cost", "cost_usd"))


def postgres_arrays(outcomes: Sequence[Outcome]) -> dict[str, list[Any]]:
    """One array per usage column, one element per outcome (all NULL for an outcome
    without usage: ``u_outcome`` NULL writes no row)."""
    rows = [usage_fields(oc) or {} for oc in outcomes]
    return {param: [r.get(key) for r in rows] for param, key in _PG_ARRAYS}


@dataclass(frozen=True)
class UsageRow:
    """Attempts of one tenant or queue in a time range, summed."""

    group: str
    attempts: int
    succeeded: int
    failed: int
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int | None  # the largest peak of any sandboxed attempt
    result_bytes: int
    log_bytes: int
    tokens_in: int
    tokens_out: int
    cost_usd: float

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group, "attempts": self.attempts, "succeeded": self.succeeded,
            "failed": self.failed, "wall_seconds": round(self.wall_seconds, 6),
            "cpu_seconds": round(self.cpu_seconds, 6),
            "peak_memory_bytes": self.peak_memory_bytes, "result_bytes": self.result_bytes,
            "log_bytes": self.log_bytes, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "cost_usd": round(self.cost_usd, 8),
        }


class UsageReader:
    """Sums of ``treadle_attempt_usage`` over ``[start, end)``; ``tenant`` narrows."""

    def __init__(self, store: Store) -> None:
        self.sql = ExtensionSql(store, "usage_queries.sql")

    def summary(self, *, start: datetime, end: datetime, group_by: GroupBy,
                tenant: str | None = None) -> list[UsageRow]:
        if group_by not in GROUPS:
            raise InvalidInput("group_by must be 'tenant' or 'queue'")
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("from and to must include a timezone")
        rows = self.sql.run("usage_grouped", {
            "by": group_by, "start": self.sql.ts_in(start), "end": self.sql.ts_in(end),
            "tenant": tenant})
        return [UsageRow(
            group=str(r["grp"]), attempts=int(r["attempts"]), succeeded=int(r["succeeded"]),
            failed=int(r["failed"]), wall_seconds=float(r["wall_seconds"] or 0.0),
            cpu_seconds=float(r["cpu_seconds"] or 0.0),
            peak_memory_bytes=None if r["peak_memory_bytes"] is None
            else int(r["peak_memory_bytes"]),
            result_bytes=int(r["result_bytes"] or 0), log_bytes=int(r["log_bytes"] or 0),
            tokens_in=int(r["tokens_in"] or 0), tokens_out=int(r["tokens_out"] or 0),
            cost_usd=float(r["cost_usd"] or 0.0),
        ) for r in rows]

    def by_tenant_and_queue(self, *, since: datetime) -> list[dict[str, Any]]:
        """Sums per (tenant, queue) since ``since`` (``/metrics``; at most 1000 pairs)."""
        return [dict(r) for r in self.sql.run("usage_by_tenant_and_queue",
                                              {"start": self.sql.ts_in(since)})]

    def attempts(self, job_id: int) -> list[dict[str, Any]]:
        """Every usage row of one job (the job page, tests)."""
        out = []
        for r in self.sql.run("usage_of_job", {"job_id": job_id}):
            row = dict(r)
            row["finished_at"] = self.sql.ts_out(row["finished_at"])
            out.append(row)
        return out
