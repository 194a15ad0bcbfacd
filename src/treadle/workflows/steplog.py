"""The step log of one attempt over the stores (implements :class:`StepLog`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from treadle.core import storable
from treadle.core.errors import ErrorInfo
from treadle.core.job import Job, NewJob
from treadle.workflows.db import WorkflowDb
from treadle.workflows.log import TxWrite
from treadle.workflows.model import ChildState, FencedSignal, Step, StepKind, StepStatus

# Results above this are stored once in treadle_wf_blobs and loaded only when replayed,
# so listing a long workflow's steps (every replay does) stays cheap.
INLINE_RESULT_BYTES = 64 << 10


class SqlStepLog:
    def __init__(self, db: WorkflowDb, job: Job) -> None:
        self.db = db
        self.job = job

    def _base(self, seq: int, name: str, kind: StepKind,
              started_at: datetime | None = None) -> dict[str, Any]:
        now = self.db.now()
        return {"job_id": self.job.id, "token": self.job.lease_token, "seq": seq,
                "name": name, "kind": kind.value, "now": self.db.ts_in(now),
                "started_at": self.db.ts_in(started_at or now),
                "unstarted": 1 if started_at is not None else 0,
                "detail": json.dumps({"step": name, "seq": seq, "kind": kind.value})}

    def _fenced(self, op: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        rows = self.db.op(op, params)
        if not rows:
            raise FencedSignal  # the lease moved on: this attempt is a zombie
        return rows

    def load(self) -> list[Step]:
        return steps_from_rows(self.db, self.db.read("steps", {"job_id": self.job.id}))

    def load_result(self, ref: str) -> Any:
        rows = self.db.read("blob", {"hash": ref})
        return json.loads(rows[0]["data"]) if rows else None

    def start(self, seq: int, name: str, kind: StepKind) -> int:
        return int(self._fenced("step_start", self._base(seq, name, kind))[0]["attempt"])

    def complete(
        self, seq: int, name: str, kind: StepKind, result_json: str, *,
        event_key: str | None = None, event_id: int | None = None,
        started_at: datetime | None = None, also: TxWrite | None = None,
    ) -> None:
        ref = None
        if len(result_json) > INLINE_RESULT_BYTES:
            ref = hashlib.sha256(result_json.encode()).hexdigest()
        params = {
            **self._base(seq, name, kind, started_at), "result": None if ref else result_json,
            "result_ref": ref, "event_key": event_key, "event_id": event_id,
        }
        blob = {"hash": ref, "data": result_json}
        if also is None:  # the common case: one statement (PostgreSQL: one round trip)
            if ref is not None:
                self.db.write("put_blob", blob)
            self._fenced("step_complete", params)
            return
        with self.db.transaction() as tx:
            if ref is not None:
                tx.run("put_blob", blob)
            if not tx.op("step_complete", params):
                raise FencedSignal  # rolled back: neither the checkpoint nor `also`
            also(tx.store_tx)

    def fail(self, seq: int, name: str, kind: StepKind, error: ErrorInfo, *,
             started_at: datetime | None = None) -> None:
        info = error.to_json()
        if isinstance(info.get("detail"), dict):  # tracebacks live in the job's error
            info["detail"] = {k: v for k, v in info["detail"].items() if k != "traceback"}
        info = storable.repair(info)  # what user code raised is recorded, whatever it holds
        base = self._base(seq, name, kind, started_at)
        self._fenced("step_fail", {**base, "error": json.dumps(info),
                                   "error_detail": json.dumps({**json.loads(base["detail"]),
                                                               "error": info})})

    def wait(
        self, seq: int, name: str, kind: StepKind, *, wake_at: datetime | None = None,
        event_key: str | None = None, event_after: int = 0, fail_fast: bool = True,
    ) -> None:
        self._fenced("step_wait", {
            **self._base(seq, name, kind), "wake_at": self.db.ts_in(wake_at),
            "event_key": event_key, "event_after": event_after, "fail_fast": fail_fast,
        })

    def find_event(self, key: str, after: int) -> tuple[int, Any] | None:
        rows = self.db.read("find_event", {"job_id": self.job.id, "key": key, "after": after})
        if not rows:
            return None
        return int(rows[0]["id"]), self.db.json_out(rows[0]["payload"])

    def spawn(
        self, seq: int, name: str, kind: StepKind, jobs: Sequence[NewJob], *,
        fail_fast: bool, completed: bool,
    ) -> list[int]:
        base = self._base(seq, name, kind)
        with self.db.transaction() as tx:
            if not tx.run("fence", base):
                raise FencedSignal
            children = tx.enqueue(jobs)
            ids = [c.id for c in children]
            for idx, child in enumerate(children):
                tx.run("link_child", {"parent_id": self.job.id, "seq": seq, "idx": idx,
                                      "child_id": child.id})
            if completed:
                tx.op("step_complete", {**base, "result": json.dumps(ids[0]),
                                         "result_ref": None, "event_key": None,
                                         "event_id": None})
            else:
                tx.run("step_wait", {**base, "wake_at": None, "event_key": None,
                                     "event_after": 0, "fail_fast": fail_fast})
        return ids

    def children(self, seq: int) -> list[ChildState]:
        rows = self.db.read("children", {"job_id": self.job.id, "seq": seq})
        out = []
        for r in rows:
            err = self.db.json_out(r["error"])
            out.append(ChildState(int(r["idx"]), int(r["id"]), str(r["status"]),
                                  self.db.json_out(r["result"]),
                                  ErrorInfo.from_json(err) if err else None))
        return out

    def retried_after_cancel(self, since: datetime) -> bool:
        return bool(self.db.read("retried_after_cancel",
                                 {"job_id": self.job.id, "since": self.db.ts_in(since)}))

    def retry_children(self, seq: int) -> int:
        now = self.db.ts_in(self.db.now())
        n = 0
        with self.db.transaction() as tx:
            if not tx.run("fence", {"job_id": self.job.id, "token": self.job.lease_token}):
                raise FencedSignal
            for r in tx.run("children_to_retry", {"job_id": self.job.id, "seq": seq}):
                done = tx.run("retry_child", {"id": r["id"], "now": now})
                if done:
                    n += 1
                    tx.run("retried_child_event", {
                        "id": r["id"], "from_status": r["status"], "attempt": done[0]["attempt"],
                        "now": now, "detail": json.dumps({"by_parent": self.job.id})})
        return n


def steps_from_rows(db: WorkflowDb, rows: Sequence[Mapping[str, Any]]) -> list[Step]:
    out = []
    for r in rows:
        err = db.json_out(r["error"])
        out.append(Step(
            name=r["name"], status=StepStatus(r["status"]), attempt=int(r["attempt"]),
            result=db.json_out(r["result"]),
            error=ErrorInfo.from_json(err) if err else None,
            started_at=db.codec.opt_ts(r["started_at"]),
            finished_at=db.codec.opt_ts(r["finished_at"]),
            seq=int(r["seq"]), kind=StepKind(r["kind"]), result_ref=r["result_ref"],
            wake_at=db.codec.opt_ts(r["wake_at"]), event_key=r["event_key"],
            event_after=int(r["event_after"] or 0),
            event_id=int(r["event_id"]) if r["event_id"] is not None else None,
            fail_fast=bool(r["fail_fast"]),
        ))
    return out
