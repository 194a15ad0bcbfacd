"""A job's event log shaped for reading: grouped by attempt, long histories folded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from treadle.core.job import Job, JobEvent, JobLog
from treadle.core.lifecycle import JobStatus

# Past this many attempts, the middle ones fold into one <details>: a job that continued
# 500 times must not bury its first and last attempts under a wall of identical rows.
FOLD_AFTER = 6
KEEP_HEAD = 2
KEEP_TAIL = 3

_TONE = {
    "completed": "ok",
    "enqueued": "info",
    "claimed": "info",
    "manual_retry": "info",
    "released": "info",
    "continued": "info",
    "retry": "warn",
    "lease_expired": "warn",
    "worker_died": "warn",
    "lease_lost": "warn",
    "timeout": "bad",
    "failed": "bad",
    "attempts_exhausted": "bad",
    "cancelled": "muted",
    "waiting": "info",
    "woken": "info",
    "quarantined": "bad",
    "quarantine_released": "info",
    "discarded": "bad",
    "step_started": "info",
    "step_completed": "ok",
    "step_failed": "warn",
}

_LABEL = {
    "enqueued": "Enqueued",
    "claimed": "Claimed",
    "completed": "Succeeded",
    "retry": "Failed, will retry",
    "failed": "Failed",
    "attempts_exhausted": "Failed, no attempts left",
    "timeout": "Timed out",
    "lease_expired": "Lease expired",
    "worker_died": "Worker died",
    "lease_lost": "Stale write refused (lease lost)",
    "released": "Released (worker shut down)",
    "continued": "Continued in a fresh attempt",
    "manual_retry": "Retried by a user",
    "cancelled": "Cancelled",
    "waiting": "Waiting (no slot, no lease)",
    "woken": "Woken",
    "quarantined": "Quarantined (its worker kept dying)",
    "quarantine_released": "Released from quarantine",
    "discarded": "Discarded from quarantine",
    "step_started": "Step started",
    "step_completed": "Step completed",
    "step_failed": "Step failed",
}


@dataclass
class Entry:
    event: JobEvent
    label: str
    tone: str
    error_class: str | None = None


@dataclass
class AttemptGroup:
    attempt: int  # 0: before the first claim
    entries: list[Entry] = field(default_factory=list)
    logs: list[JobLog] = field(default_factory=list)
    worker: str | None = None


@dataclass
class Timeline:
    head: list[AttemptGroup]
    folded: list[AttemptGroup]
    tail: list[AttemptGroup]

    @property
    def groups(self) -> list[AttemptGroup]:
        return [*self.head, *self.folded, *self.tail]


def _error_class(detail: Any) -> str | None:
    if isinstance(detail, dict):
        value = detail.get("class") or detail.get("error_class")
        if isinstance(value, str):
            return value
        err = detail.get("error")
        if isinstance(err, dict) and isinstance(err.get("class"), str):
            return str(err["class"])
    return None


def build(job: Job, events: Sequence[JobEvent], logs: Sequence[JobLog]) -> Timeline:
    groups: list[AttemptGroup] = [AttemptGroup(attempt=0)]
    by_attempt: dict[int, AttemptGroup] = {}
    for ev in events:
        if ev.reason == "claimed":
            group = AttemptGroup(attempt=ev.attempt, worker=ev.worker)
            groups.append(group)
            by_attempt[ev.attempt] = group
        entry = Entry(
            event=ev,
            label=_LABEL.get(ev.reason, ev.reason.replace("_", " ").capitalize()),
            tone=_TONE.get(ev.reason, "info"),
            error_class=_error_class(ev.detail),
        )
        groups[-1].entries.append(entry)
    _attribute_last_error(job, groups)
    for log in logs:
        target = by_attempt.get(log.attempt)
        if target is None:
            target = AttemptGroup(attempt=log.attempt)
            by_attempt[log.attempt] = target
            groups.append(target)
        target.logs.append(log)
    if not groups[0].entries and not groups[0].logs:
        groups.pop(0)
    if len(groups) <= FOLD_AFTER:
        return Timeline(head=groups, folded=[], tail=[])
    return Timeline(
        head=groups[:KEEP_HEAD], folded=groups[KEEP_HEAD:-KEEP_TAIL], tail=groups[-KEEP_TAIL:]
    )


def _attribute_last_error(job: Job, groups: list[AttemptGroup]) -> None:
    """Events do not carry the error of each attempt; the job row holds the latest one.

    Label the last failure-like entry with it so the timeline still says *why*.
    """
    if job.error is None or job.status is JobStatus.SUCCEEDED:
        return
    for group in reversed(groups):
        for entry in reversed(group.entries):
            if entry.tone in {"warn", "bad"} and entry.event.reason != "lease_lost":
                if entry.error_class is None:
                    entry.error_class = job.error.error_class.value
                return
