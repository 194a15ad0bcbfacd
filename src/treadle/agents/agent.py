"""``app.agent(...)``: an agent definition whose runs are jobs of kind ``agent``.

An :class:`Agent` is registered among the app's tasks under its name, so everything that
submits, lists, retries or waits for tasks works for agents too (``defer``,
``defer_many``, ``POST /v1/jobs``, ``POST /v1/run``, ``treadle jobs``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from treadle.agents.adapters import resolve
from treadle.agents.loop import AgentSpec, AgentTool
from treadle.agents.messages import MAX_TEXT_CHARS, MAX_TOKENS, ModelAdapter, clean_text
from treadle.agents.output import OutputSpec, Validator
from treadle.agents.pricing import Price, PriceTable
from treadle.agents.report import Limits
from treadle.agents.sources import parse_documents
from treadle.agents.tools import Tool
from treadle.app import JobHandle, Task, TaskOptions
from treadle.core.errors import ConfigurationError, ErrorClass, InvalidInput
from treadle.core.job import JobKind, NewJob
from treadle.core.retry import RetryPolicy
from treadle.task import registered_name

if TYPE_CHECKING:
    from treadle.app import Treadle

# A budget stop replays to the same stop: retrying it only burns attempts.
AGENT_RETRY_POLICY = RetryPolicy(never_retry=frozenset({ErrorClass.RESOURCE_EXHAUSTED}))
ATTEMPT_GRACE = 30.0  # an attempt may outlive the run's wall time by this (to stop cleanly)


def _signature(input: Any, documents: Any = None) -> None:
    """What an agent job's payload may hold (checked at submit, like a task's)."""


class Agent(Task[..., Any]):
    def __init__(self, app: Treadle, name: str, spec: AgentSpec, options: TaskOptions, *,
                 owns_adapter: bool = False) -> None:
        super().__init__(app, _signature, name, options)
        self.spec = spec
        # Built here from a model string (so closed with the app), not passed in by the caller.
        self.owns_adapter = owns_adapter

    def __repr__(self) -> str:
        return f"<Agent {self.name!r} model={self.spec.adapter.model!r}>"

    def check_arguments(self, payload: dict[str, Any]) -> dict[str, Any]:
        payload = super().check_arguments(payload)
        input_text(payload["input"])
        parse_documents(payload.get("documents"))
        return payload

    def new_job(self, payload: Any, **opts: Any) -> NewJob:
        return replace(super().new_job(payload, **opts), kind=JobKind.AGENT)

    def defer(self, **kwargs: Any) -> JobHandle:
        """``agent.defer(input="SKU A1", documents=[...])``: one run, as a job."""
        return super().defer(**kwargs)

    def schedule(self, every: float, **payload: Any) -> Agent:
        """Run this agent every ``every`` seconds (the scheduler enqueues one run per
        slot, whatever the number of workers), with ``payload`` (``input=...``)."""
        from treadle.worker.scheduler import Periodic

        self.check_arguments(dict(payload))
        self.app.periodics.append(Periodic(self.name, every, dict(payload)))
        return self

    def defer_many(self, payloads: Iterable[Mapping[str, Any]]) -> list[JobHandle]:
        """Many runs in one transaction: each payload ``{"input": ..., "documents": ...}``."""
        return super().defer_many(payloads)


def input_text(value: Any) -> str:
    """The run's input as the model sees it: text as is, JSON values as JSON."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"input must be text or JSON: {exc}") from None
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"input is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return clean_text(text)


def register(
    app: Treadle, *, name: str, model: str | ModelAdapter, instructions: str = "",
    tools: Sequence[Tool | AgentTool | Callable[..., Any]] = (),
    output: Any = None, validators: Sequence[Validator] = (),
    max_iterations: int = 10, max_tool_calls: int = 30, max_tokens: int | None = None,
    budget_usd: float | None = None, timeout: float | None = 300.0,
    prices: Mapping[str, Price | tuple[float, float]] | None = None,
    max_repairs: int = 2, context_tokens: int | None = None,
    max_output_tokens: int | None = None, queue: str | None = None, retries: int = 3,
    priority: int = 0, retry_policy: RetryPolicy = AGENT_RETRY_POLICY,
) -> Agent:
    from treadle.agents.plugin import Agents

    if not isinstance(name, str) or not name:
        raise ConfigurationError("an agent needs a name")
    registered_name("agent", name)
    if name in app.tasks:
        raise ConfigurationError(f"a task named {name!r} is already registered")
    if isinstance(max_repairs, bool) or not isinstance(max_repairs, int) or max_repairs < 0:
        raise ConfigurationError("max_repairs must be an integer >= 0")
    if not isinstance(instructions, str):
        raise ConfigurationError("instructions must be text")
    for what, value in (("context_tokens", context_tokens),
                        ("max_output_tokens", max_output_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= MAX_TOKENS):
            raise ConfigurationError(f"{what} must be an integer from 1 to {MAX_TOKENS} or None")
    if not all(callable(v) for v in validators):
        raise ConfigurationError("validators must be functions")
    registry: dict[str, AgentTool] = {}
    for t in tools:
        if not callable(t) and not hasattr(t, "invoke"):
            raise ConfigurationError(f"agent {name!r}: a tool must be a function or a tool, "
                                     f"got {type(t).__name__}")
        agent_tool: AgentTool = t if hasattr(t, "invoke") else Tool(t)  # type: ignore[assignment]
        if agent_tool.name in registry:
            raise ConfigurationError(f"agent {name!r} has two tools named {agent_tool.name!r}")
        registry[agent_tool.name] = agent_tool
    spec = AgentSpec(
        name=name, adapter=resolve(model), instructions=instructions, tools=registry,
        output=OutputSpec(output, validators),
        limits=Limits(max_iterations, max_tool_calls, max_tokens, budget_usd, timeout),
        prices=PriceTable(prices), max_repairs=max_repairs, context_tokens=context_tokens,
        max_output_tokens=max_output_tokens,
    )
    options = TaskOptions(
        queue=queue or "default", retries=retries, priority=priority, retry_policy=retry_policy,
        timeout=None if timeout is None else timeout + ATTEMPT_GRACE,
    )
    agent = Agent(app, name, spec, options, owns_adapter=isinstance(model, str))
    if app.find_plugin(Agents) is None:
        app.use(Agents())
    app.tasks[name] = agent
    return agent
