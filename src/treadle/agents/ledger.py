"""The per-tenant spending ledger: one row per completed model call, a cap per tenant.

A model step's row is written in the same transaction as its checkpoint
(:mod:`treadle.agents.steps`), keyed by (job, turn): spend is recorded exactly when the
call's result is, and a replay never writes it twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from treadle.core.errors import InvalidInput
from treadle.core.job import validate_name
from treadle.store import Store
from treadle.store.extension import ExtensionSql

SQL_PACKAGE = "treadle.agents.sql"


@dataclass(frozen=True)
class TenantSpend:
    tenant: str
    runs: int
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    cap_usd: float | None

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "runs": self.runs, "calls": self.calls,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "cost_usd": round(self.cost_usd, 8), "cap_usd": self.cap_usd}


class Ledger:
    def __init__(self, store: Store) -> None:
        self.sql = ExtensionSql.of_package(store, SQL_PACKAGE)

    def _now(self) -> Any:
        return self.sql.codec.ts_in(self.sql.now())

    def spent(self, tenant: str) -> float:
        return float(self.sql.run("tenant_spend", {"tenant": tenant})[0]["cost_usd"] or 0.0)

    def cap(self, tenant: str) -> float | None:
        rows = self.sql.run("tenant_cap", {"tenant": tenant})
        return float(rows[0]["cap_usd"]) if rows else None

    def over_cap(self, tenant: str) -> tuple[float, float] | None:
        """(spent, cap) when the tenant has a cap and has reached it, else None."""
        rows = self.sql.run("cap_and_spend", {"tenant": tenant})
        if not rows:
            return None
        cap, spent = float(rows[0]["cap_usd"]), float(rows[0]["spent_usd"] or 0.0)
        return (spent, cap) if spent >= cap else None

    def set_cap(self, tenant: str, cap_usd: float | None) -> None:
        validate_name("tenant", tenant)
        if cap_usd is None:
            self.sql.run("clear_cap", {"tenant": tenant}, write=True)
            return
        # Infinity would be stored, then fail every JSON answer that shows it.
        if not (cap_usd >= 0 and math.isfinite(cap_usd)):  # also refuses NaN
            raise InvalidInput("a spending cap must be a finite number >= 0")
        self.sql.run("set_cap", {"tenant": tenant, "cap_usd": float(cap_usd),
                                 "now": self._now()}, write=True)

    def by_tenant(self, limit: int = 100) -> list[TenantSpend]:
        return [TenantSpend(str(r["tenant"]), int(r["runs"]), int(r["calls"]),
                            int(r["tokens_in"]), int(r["tokens_out"]), float(r["cost_usd"]),
                            None if r["cap_usd"] is None else float(r["cap_usd"]))
                for r in self.sql.run("spend_by_tenant", {"limit": limit})]

    def job(self, job_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.sql.run("job_spend", {"job_id": job_id})]
