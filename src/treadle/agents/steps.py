"""A model call as a workflow step whose checkpoint carries its ledger row.

``ctx.step`` already writes a short step once (its start with its result, ADR 0009). A
model call is also paid: here its checkpoint and its row in the spending ledger are one
transaction, so spend is recorded exactly when the call's result is — a replay finds
both, a crash before the commit leaves neither, and nothing is counted twice.

Built on :class:`~treadle.workflows.context.WorkflowContext` (same step log, fencing by
lease token, replay and determinism checks, the early-start timer for long calls); a
result too big to keep inline takes the generic path, with the ledger row written after.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from treadle.core.classify import classify
from treadle.store.extension import ExtensionSql
from treadle.workflows.context import STEP_START_GRACE, WorkflowContext, _step_key
from treadle.workflows.db import WorkflowDb
from treadle.workflows.model import FencedSignal, StepKind, StepStatus
from treadle.workflows.steplog import INLINE_RESULT_BYTES
from treadle.workflows.timer import TIMERS

LedgerRow = Callable[[Any], Mapping[str, Any] | None]  # step result -> ledger params


class AgentContext(WorkflowContext):
    def bind(self, db: WorkflowDb, ledger_sql: ExtensionSql | None) -> AgentContext:
        self._db = db
        self._ledger_sql = ledger_sql
        return self

    def paid_step(self, name: str, fn: Callable[..., Any], *args: Any,
                  ledger: LedgerRow) -> Any:
        """``ctx.step(name, fn, *args)``, committing ``ledger(result)`` with it."""
        seq, rec = self._next(name, StepKind.STEP)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return self._stored_result(rec)
        started_at = self._clock.now()
        early = TIMERS.after(STEP_START_GRACE,
                             lambda: self._log.start(seq, name, StepKind.STEP))
        token = _step_key.set(self.idempotency_key(name))
        self._stream_step(seq, name, "started")  # watchers see each turn live
        try:
            with self.job_ctx.span(f"step {name}",
                                   {"treadle.step": name, "treadle.seq": seq}) as span:
                try:
                    value = fn(*args)
                except Exception as exc:
                    span.fail(f"{type(exc).__name__}")
                    raise
        except Exception as exc:
            unrecorded = None if early.settle() else started_at
            self._log.fail(seq, name, StepKind.STEP, classify(exc), started_at=unrecorded)
            self._stream_step(seq, name, "failed")
            raise
        except BaseException:
            early.settle()
            raise
        finally:
            _step_key.reset(token)
        unrecorded = None if early.settle() else started_at
        text = self._encode(seq, name, StepKind.STEP, value, started_at=unrecorded)
        row = ledger(value)
        if row is not None:  # the tokens and money of this call, in the attempt's usage
            self.job_ctx.record_usage(tokens_in=int(row.get("tokens_in") or 0),
                                      tokens_out=int(row.get("tokens_out") or 0),
                                      cost_usd=float(row.get("cost_usd") or 0.0))
        if self._ledger_sql is None:
            row = None
        if row is None or len(text) > INLINE_RESULT_BYTES:
            self._log.complete(seq, name, StepKind.STEP, text, started_at=unrecorded)
            if row is not None and self._ledger_sql is not None:
                self._ledger_sql.run("record_spend", {**row, "now": self._db.ts_in(
                    self._db.now())}, write=True)
        else:
            self._complete(seq, name, text, unrecorded, row)
        self._stream_step(seq, name, "completed")
        return json.loads(text)

    def _complete(self, seq: int, name: str, text: str, started_at: datetime | None,
                  row: Mapping[str, Any]) -> None:
        db = self._db
        now = db.now()
        params = {"job_id": self.job.id, "token": self.job.lease_token, "seq": seq,
                  "name": name, "kind": StepKind.STEP.value, "now": db.ts_in(now),
                  "started_at": db.ts_in(started_at or now),
                  "unstarted": 1 if started_at is not None else 0,
                  "detail": json.dumps({"step": name, "seq": seq, "kind": "step"}),
                  "result": text, "result_ref": None, "event_key": None, "event_id": None}
        with db.store.transaction() as tx:
            if not tx.execute(db.q["step_complete"], params):
                raise FencedSignal  # this attempt lost its lease: nothing is written
            n = 2
            while f"step_complete__{n}" in db.q:  # SQLite: its events, separate statements
                tx.execute(db.q[f"step_complete__{n}"], params)
                n += 1
            assert self._ledger_sql is not None
            self._ledger_sql.run("record_spend", {**row, "now": params["now"]}, tx=tx)
