"""A dynamic worker (sandboxed code a tenant registered) as an agent tool.

The tool runs the worker in a fresh sandbox (``load``) with the worker's own limits, for
the run's tenant (another tenant's worker is not found), inside the tool-call step. The
model's arguments are validated against the declared JSON Schema and become the
handler's input; its return value is the tool's result. Anything the sandbox refuses or
the code throws goes back to the model as the tool's error, like any tool's failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from treadle.agents.messages import ToolSpec
from treadle.agents.output import _compile
from treadle.agents.tools import _NAME, ToolArgumentError, ToolContext, parse_arguments
from treadle.core.errors import ConfigurationError, ErrorClass, TreadleError

if TYPE_CHECKING:
    from treadle.app import Treadle


class ToolFailed(Exception):
    """The sandboxed code failed or was stopped by its limits: the model's to handle."""


class DynamicTool:
    def __init__(self, app: Treadle, worker_id: str, *, name: str, description: str,
                 parameters: Mapping[str, Any] | None = None) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(f"tool name {name!r} must match {_NAME.pattern}")
        self.app = app
        self.worker_id = worker_id
        self.name = name
        self.description = description
        self.parameters = dict(parameters or {"type": "object", "properties": {}})
        self._validator = _compile(self.parameters)
        self.safe_to_repeat = True  # a fresh sandbox; its only side effects go via bindings

    def __repr__(self) -> str:
        return f"<DynamicTool {self.name!r} worker={self.worker_id!r}>"

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    def invoke(self, arguments: str, ctx: ToolContext) -> Any:
        from treadle.dynamic.plugin import DynamicWorkers
        from treadle.sandbox import Bindings

        args = parse_arguments(arguments)
        errors = [e.message for e in self._validator.iter_errors(args)][:10]
        if errors:
            raise ToolArgumentError("invalid arguments: " + "; ".join(errors))
        executor = self.app.plugin(DynamicWorkers).registry.executor
        worker = executor.worker(ctx.tenant, self.worker_id)
        kv = executor.repo.kv_for_tenant(ctx.tenant) if worker.spec.kv else None
        try:
            result = executor.manager.load(worker.spec, args, tenant=ctx.tenant,
                                           bindings=Bindings(kv=kv))
        except TreadleError as exc:
            if exc.error_class is ErrorClass.TRANSIENT:  # the sandbox host, not the code
                raise
            raise ToolFailed(f"{exc.error_class.value}: {exc.message}") from None
        return result.output


def dynamic_tool(app: Treadle, worker_id: str, *, name: str, description: str,
                 parameters: Mapping[str, Any] | None = None) -> DynamicTool:
    """``tools=[dynamic_tool(app, wid, name="score", description=..., parameters=schema)]``."""
    return DynamicTool(app, worker_id, name=name, description=description,
                       parameters=parameters)
