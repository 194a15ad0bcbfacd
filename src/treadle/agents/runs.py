"""An agent run as turns, read back from its step log (the API, UI and CLI show this).

Turn ``n`` is model step ``model#n`` and its tool steps ``tool#n.i``; the arguments of
each tool call come from the assistant message of the model step (stored once).
"""

from __future__ import annotations

import re
from typing import Any

from treadle.core.job import Job
from treadle.workflows.model import Step

_MODEL = re.compile(r"^model#(\d+)$")
_TOOL = re.compile(r"^tool#(\d+)\.(\d+)$")


def _ms(step: Step) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return (step.finished_at - step.started_at).total_seconds() * 1000


def run_view(job: Job, steps: list[Step]) -> dict[str, Any]:
    turns: dict[int, dict[str, Any]] = {}
    for s in steps:
        result = s.result if isinstance(s.result, dict) else {}
        m = _MODEL.match(s.name)
        if m:
            msg = result.get("message") or {}
            turns[int(m.group(1))] = {
                "turn": int(m.group(1)), "status": s.status.value, "attempt": s.attempt,
                "content": msg.get("content"), "stopped": result.get("stopped"),
                "usage": result.get("usage"), "cost_usd": result.get("cost_usd"),
                "ms": result.get("ms"), "model": result.get("model"),
                "error": s.error.to_json() if s.error else None,
                "calls": [dict(c) for c in msg.get("tool_calls") or []], "tools": []}
            continue
        m = _TOOL.match(s.name)
        if m and int(m.group(1)) in turns:
            turn = turns[int(m.group(1))]
            idx = int(m.group(2))
            call = turn["calls"][idx] if idx < len(turn["calls"]) else {}
            turn["tools"].append({
                "name": call.get("name"), "arguments": call.get("arguments"),
                "status": s.status.value, "attempt": s.attempt,
                "content": result.get("content"), "is_error": result.get("is_error"),
                "ms": result.get("ms", _ms(s)),
                "error": s.error.to_json() if s.error else None})
    report: dict[str, Any] | None = None
    output: Any = None
    if isinstance(job.result, dict):
        report = job.result.get("report")
        output = job.result.get("output")
    elif job.error is not None and isinstance(job.error.detail, dict):
        info = job.error.detail.get("info")
        if isinstance(info, dict):
            report = info.get("report")
    return {"job_id": job.id, "agent": job.task, "status": job.status.value,
            "tenant": job.tenant, "input": job.payload.get("input"), "output": output,
            "report": report, "stop_reason": (report or {}).get("stop_reason"),
            "error": job.error.to_json() if job.error else None,
            "turns": [turns[k] for k in sorted(turns)]}
