"""``@app.workflow``: a registered function whose jobs are of kind ``workflow``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from treadle.app import Task, TaskOptions
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import JobKind, NewJob
from treadle.task import registered_name

if TYPE_CHECKING:
    from treadle.app import Treadle


class Workflow(Task[..., Any]):
    """A workflow: ``fn(ctx, **payload)``. Deferred, listed and retried like a task; its
    jobs run on the workflow executor, which replays ``fn`` from its checkpoints."""

    def __init__(self, app: Treadle, fn: Callable[..., Any], name: str,
                 options: TaskOptions) -> None:
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"workflow {name!r} must be a plain function (not async); "
                                     "its steps may be async")
        params = list(inspect.signature(fn).parameters.values())
        if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                inspect.Parameter.POSITIONAL_OR_KEYWORD):
            raise ConfigurationError(f"workflow {name!r} must take the context as its first "
                                     "positional argument: def flow(ctx, ...)")
        super().__init__(app, fn, name, options)

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} queue={self.options.queue!r}>"

    def check_arguments(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            self._signature.bind(None, **payload)
        except TypeError as exc:
            raise InvalidInput(
                f"payload does not match workflow {self.name!r}: {exc}",
                detail={"task": self.name, "payload_keys": sorted(payload)},
            ) from None
        return payload

    def new_job(self, payload: Any, **opts: Any) -> NewJob:
        return replace(super().new_job(payload, **opts), kind=JobKind.WORKFLOW)


def register(
    app: Treadle, fn: Callable[..., Any], *, name: str | None, options: TaskOptions
) -> Workflow:
    task_name = registered_name(
        "workflow", f"{fn.__module__}.{fn.__qualname__}" if name is None else name)
    if task_name in app.tasks:
        raise ConfigurationError(f"a task named {task_name!r} is already registered")
    wf = Workflow(app, fn, task_name, options)
    app.tasks[task_name] = wf
    return wf
