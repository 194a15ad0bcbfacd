"""A workflow job as a tree of steps and child jobs (``treadle jobs show``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.tree import Tree

from treadle.core.job import Job
from treadle.workflows.model import Step

if TYPE_CHECKING:
    from treadle.app import Treadle

MAX_CHILDREN_SHOWN = 20
_STYLE = {"completed": "green", "failed": "red", "running": "yellow", "waiting": "magenta",
          "succeeded": "green", "cancelled": "dim", "queued": "cyan"}


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_line(step: Step) -> str:
    style = _STYLE.get(step.status.value, "")
    line = (f"#{step.seq} [bold]{escape(step.name)}[/] ({step.kind.value}) "
            f"[{style}]{step.status.value}[/] attempt {step.attempt}")
    if step.error is not None:
        line += f" [red]{step.error.error_class.value}: {escape(step.error.message[:80])}[/]"
    elif step.result_ref is not None:
        line += f" [dim]result stored apart ({step.result_ref[:12]})[/]"
    elif step.status.value == "completed":
        line += f" → {escape(_short(step.result))}"
    if step.status.value == "waiting":
        waits = []
        if step.wake_at is not None:
            waits.append(f"until {step.wake_at.isoformat(timespec='seconds')}")
        if step.event_key is not None:
            waits.append(f"event {step.event_key!r}")
        if step.children:
            waits.append(f"{len(step.children)} children")
        line += f" [magenta]({', '.join(escape(w) for w in waits)})[/]"
    return line


def steps_tree(app: Treadle, job: Job, *, depth: int = 2) -> Tree:
    """The job's steps; under a map/spawn step its children (workflows, recursively)."""
    tree = Tree(f"workflow {job.id} [bold]{escape(job.task)}[/] steps")
    for step in app.job_steps(job.id):
        node = tree.add(step_line(step))
        for child_id in step.children[:MAX_CHILDREN_SHOWN]:
            child = app.get_job(child_id)
            style = _STYLE.get(child.status.value, "")
            label = (f"job {child.id} {escape(child.task)} ({child.kind.value}) "
                     f"[{style}]{child.status.value}[/]")
            sub = node.add(label)
            if child.kind.value == "workflow" and depth > 1:
                sub.add(steps_tree(app, child, depth=depth - 1))
        if len(step.children) > MAX_CHILDREN_SHOWN:
            node.add(f"[dim]… {len(step.children) - MAX_CHILDREN_SHOWN} more children[/]")
    return tree
