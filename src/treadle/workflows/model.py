"""The values of durable workflows: steps as stored and shown, children, and the errors
a replay raises (ADR 0009)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from treadle.core.errors import ErrorClass, ErrorInfo, Permanent, TreadleError


class StepKind(enum.StrEnum):
    STEP = "step"  # ctx.step: a function call whose result is checkpointed
    SLEEP = "sleep"  # ctx.sleep
    EVENT = "event"  # ctx.wait_event
    MAP = "map"  # ctx.map: child jobs, fan-in
    SPAWN = "spawn"  # ctx.spawn: one child job


class StepStatus(enum.StrEnum):
    RUNNING = "running"  # started in some attempt, not finished (maybe interrupted)
    WAITING = "waiting"  # the job is suspended on this step (time, event, children)
    COMPLETED = "completed"  # result checkpointed: a replay returns it without running
    FAILED = "failed"  # the last run raised; a later attempt runs it again


@dataclass(frozen=True)
class Step:
    """One step of a workflow job as stored (``app.job_steps``)."""

    name: str
    status: StepStatus
    attempt: int
    result: Any = None
    error: ErrorInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seq: int = 0
    kind: StepKind = StepKind.STEP
    result_ref: str | None = None  # a big result stored apart; ``result`` is then None
    wake_at: datetime | None = None
    event_key: str | None = None
    event_after: int = 0
    event_id: int | None = None
    fail_fast: bool = True
    children: tuple[int, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "attempt": self.attempt,
            "result": self.result,
            "result_ref": self.result_ref,
            "error": self.error.to_json() if self.error else None,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "wake_at": _iso(self.wake_at),
            "event_key": self.event_key,
            "children": list(self.children),
        }


@dataclass(frozen=True)
class ChildState:
    """A child job of a map/spawn step, as the parent sees it when it resumes."""

    idx: int
    id: int
    status: str
    result: Any = None
    error: ErrorInfo | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class ChildResult:
    """One item of ``ctx.map(..., on_error="collect")``: a result, or the child's error."""

    job_id: int
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "ok": self.ok, "result": self.result,
                "error": self.error.to_json() if self.error else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChildResult:
        err = data.get("error")
        return cls(int(data["job_id"]), bool(data["ok"]), data.get("result"),
                   ErrorInfo.from_json(err) if err else None)


class NonDeterministic(Permanent):
    """On replay the workflow called steps in another order or under other names.

    Workflow code outside steps must be deterministic (ADR 0009); retrying cannot help."""


class DuplicateStep(Permanent):
    """Two steps of one run used the same name; names are what checkpoints are keyed by."""


class StepResultNotJson(Permanent):
    """A step returned a value that cannot be stored as JSON."""


class ChildFailed(TreadleError):
    """A child job of ``ctx.map``/``ctx.spawn`` failed; carries the child's error class."""

    def __init__(self, message: str, error_class: ErrorClass, *, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.error_class = error_class  # per instance: the child's class decides retries


class _Signal(BaseException):  # control flow, not an error
    """Internal control flow out of user code; a BaseException so ``except Exception``
    in a workflow cannot swallow it."""


class SuspendSignal(_Signal):
    """The workflow must wait (sleep, event, children): end the attempt as ``waiting``."""


class FencedSignal(_Signal):
    """A checkpoint was refused: this attempt no longer holds the lease (a zombie)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
