"""A model call as a workflow step whose checkpoint carries its ledger row.

A model call is paid: its checkpoint and its row in the spending ledger are one
transaction (``ctx.step(..., in_checkpoint=...)``), so spend is recorded exactly when the
call's result is — a replay finds both, a crash before the commit leaves neither, and
nothing is counted twice. Everything else is :meth:`WorkflowContext.step` (same step
log, fencing by lease token, replay and determinism checks, the early-start timer for
long calls, the step's span).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from treadle.store.base import Transaction
from treadle.store.extension import ExtensionSql
from treadle.workflows.context import WorkflowContext
from treadle.workflows.db import WorkflowDb

LedgerRow = Callable[[Any], Mapping[str, Any] | None]  # step result -> ledger params


class AgentContext(WorkflowContext):
    def bind(self, db: WorkflowDb, ledger_sql: ExtensionSql | None) -> AgentContext:
        self._db = db
        self._ledger_sql = ledger_sql
        return self

    def paid_step(self, name: str, fn: Callable[..., Any], *args: Any,
                  ledger: LedgerRow) -> Any:
        """``ctx.step(name, fn, *args)``, committing ``ledger(result)`` with it."""

        def call(*call_args: Any) -> Any:
            value = fn(*call_args)
            row = ledger(value)
            if row is not None:  # the tokens and money of this call, in the attempt's usage
                self.job_ctx.record_usage(tokens_in=int(row.get("tokens_in") or 0),
                                          tokens_out=int(row.get("tokens_out") or 0),
                                          cost_usd=float(row.get("cost_usd") or 0.0))
            return value

        sql = self._ledger_sql
        if sql is None:  # no ledger plug-in SQL: nothing to record
            return self.step(name, call, *args)

        def record(value: Any, tx: Transaction) -> None:
            row = ledger(value)
            if row is not None:
                sql.run("record_spend", {**row, "now": self._db.ts_in(self._db.now())}, tx=tx)

        return self.step(name, call, *args, in_checkpoint=record)
