"""Agent calls as workflow steps, one commit each, with the ledger row in that commit.

A generic ``ctx.step`` writes twice (a ``running`` record, then the result) so a workflow
can show a step in flight and count its starts. An agent makes many small calls and a
model call is paid: here a call's checkpoint is written once, after it returned, in one
transaction with its ledger row — so a model call's spend is recorded exactly when its
checkpoint is (a replay finds both; a crash before the commit leaves neither). Halving
the commits is most of the orchestration cost per call (fsync per commit on SQLite).

Built on :class:`~treadle.workflows.context.WorkflowContext` (same step log, same
fencing by lease token, same replay and determinism checks); big results still go through
the generic path (stored apart).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from treadle.core.classify import classify
from treadle.store import Store
from treadle.store.extension import ExtensionSql
from treadle.workflows.context import WorkflowContext, _step_key
from treadle.workflows.db import WorkflowDb
from treadle.workflows.model import FencedSignal, StepKind, StepStatus
from treadle.workflows.steplog import INLINE_RESULT_BYTES

LedgerRow = Callable[[Any], Mapping[str, Any] | None]  # step result -> ledger params


class AgentContext(WorkflowContext):
    def bind(self, db: WorkflowDb, ledger_sql: ExtensionSql | None) -> AgentContext:
        self._db = db
        self._ledger_sql = ledger_sql
        return self

    def call(self, name: str, fn: Callable[..., Any], *args: Any,
             ledger: LedgerRow | None = None) -> Any:
        """``ctx.step(name, fn, *args)`` with one commit (see the module's doc)."""
        seq, rec = self._next(name, StepKind.STEP)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return self._stored_result(rec)
        token = _step_key.set(self.idempotency_key(name))
        try:
            value = fn(*args)
        except Exception as exc:
            self._log.fail(seq, name, StepKind.STEP, classify(exc))
            raise
        finally:
            _step_key.reset(token)
        text = self._encode(seq, name, StepKind.STEP, value)
        row = ledger(value) if ledger is not None and self._ledger_sql is not None else None
        if len(text) > INLINE_RESULT_BYTES:
            self._log.complete(seq, name, StepKind.STEP, text)
            if row is not None and self._ledger_sql is not None:
                self._ledger_sql.run("record_spend", row, write=True)
        else:
            self._complete(seq, name, text, row)
        return json.loads(text)

    def _complete(self, seq: int, name: str, text: str,
                  row: Mapping[str, Any] | None) -> None:
        db = self._db
        params = {"job_id": self.job.id, "token": self.job.lease_token, "seq": seq,
                  "name": name, "kind": StepKind.STEP.value, "now": db.ts_in(db.now()),
                  "detail": json.dumps({"step": name, "seq": seq, "kind": "step"}),
                  "result": text, "result_ref": None, "event_key": None, "event_id": None}
        store: Store = db.store
        with store.transaction() as tx:
            if not tx.execute(db.q["step_complete"], params):
                raise FencedSignal  # this attempt lost its lease: nothing is written
            n = 2
            while f"step_complete__{n}" in db.q:  # SQLite: the event, a second statement
                tx.execute(db.q[f"step_complete__{n}"], params)
                n += 1
            if row is not None and self._ledger_sql is not None:
                self._ledger_sql.run("record_spend", {**row, "now": params["now"]}, tx=tx)
