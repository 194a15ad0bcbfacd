"""The agent loop, run on the workflow engine: every model call and tool call is a step.

On a resume (crash, retry) the loop replays from the top: completed steps return their
checkpointed results without calling anything, so a completed model call is never
repeated and its tokens stay in the report. Everything between steps is a pure function
of those results (budgets, context assembly, output validation), which keeps the replay
deterministic; what is not (the clock, the tenant's ledger) is read inside a step.

The conversation is stored once: each message is the result of the step that produced
it, and the model steps' inputs (the whole conversation so far) are never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from treadle.agents import report as R
from treadle.agents.ledger import Ledger
from treadle.agents.messages import (
    Message,
    ModelAdapter,
    ModelRequest,
    ToolSpec,
    Usage,
    clean_text,
    estimate_tokens,
    token_count,
)
from treadle.agents.output import OutputSpec
from treadle.agents.pricing import PriceTable
from treadle.agents.report import AgentStopped, Limits, Report
from treadle.agents.sources import Source, assemble
from treadle.agents.steps import AgentContext
from treadle.agents.tools import ToolArgumentError, ToolContext
from treadle.core.clock import Clock
from treadle.core.errors import Cancelled, ErrorClass, TreadleError
from treadle.workflows.context import current_step_key

MAX_TOOL_RESULT_CHARS = 64 << 10


class AgentTool(Protocol):
    """A tool as the loop sees it (a :class:`~treadle.agents.tools.Tool`, or a dynamic
    worker exposed as one)."""

    name: str
    safe_to_repeat: bool

    @property
    def spec(self) -> ToolSpec: ...

    def invoke(self, arguments: str, ctx: ToolContext) -> Any: ...


@dataclass(frozen=True)
class AgentSpec:
    name: str
    adapter: ModelAdapter
    instructions: str
    tools: Mapping[str, AgentTool]
    output: OutputSpec
    limits: Limits
    prices: PriceTable
    max_repairs: int = 2
    context_tokens: int | None = None
    max_output_tokens: int | None = None

    @property
    def system(self) -> str:
        return self.instructions + self.output.instructions()


@dataclass(frozen=True)
class RunEnv:
    clock: Clock
    ledger: Ledger | None
    job_id: int
    tenant: str


def run_agent(ctx: AgentContext, spec: AgentSpec, input_text: str,
              documents: Sequence[Source], env: RunEnv) -> dict[str, Any]:
    started: float = ctx.step("start", lambda: env.clock.now().timestamp())
    report = Report(model=spec.adapter.model)
    conversation: list[Message] = []
    specs = [t.spec for t in spec.tools.values()]
    fixed = estimate_tokens(spec.system) + sum(
        estimate_tokens(json.dumps(s.parameters)) + estimate_tokens(s.description) for s in specs)
    while True:
        spent = report.over(spec.limits)
        if spent is not None:
            raise AgentStopped(f"agent {spec.name!r} stopped: {spent}", spent, report)
        messages, record = assemble(input_text, documents, conversation, spec.context_tokens,
                                    fixed)
        if record:
            report.context = record
        request = ModelRequest(spec.system, messages, specs, report.turns,
                               max_output_tokens=spec.max_output_tokens)
        turn = report.turns
        res = ctx.paid_step(f"model#{turn}", _call_model, spec, env, request, started,
                            ledger=_spend_row(spec, env, turn))
        if "stopped" in res:
            raise AgentStopped(f"agent {spec.name!r} stopped: {res['stopped']}",
                               res["stopped"], report, extra=res.get("info"))
        report.turns += 1
        report.tokens_in += int(res["usage"]["input_tokens"])
        report.tokens_out += int(res["usage"]["output_tokens"])
        report.cost_usd += float(res["cost_usd"])
        report.model_ms += float(res["ms"])
        report.model = str(res.get("model") or report.model)
        message: Message = res["message"]
        conversation.append(message)
        calls = message.get("tool_calls") or []
        if calls:
            for i, call in enumerate(calls):
                if report.tool_calls >= spec.limits.max_tool_calls:
                    raise AgentStopped(f"agent {spec.name!r} stopped: {R.MAX_TOOL_CALLS}",
                                       R.MAX_TOOL_CALLS, report)
                out = ctx.step(f"tool#{turn}.{i}", _call_tool, spec, env, call)
                report.tool_calls += 1
                report.tool_ms += float(out["ms"])
                report.tool_errors += int(bool(out["is_error"]))
                conversation.append({"role": "tool", "tool_call_id": call["id"],
                                     "name": call["name"], "content": out["content"],
                                     "is_error": out["is_error"]})
            continue
        output, errors = spec.output.validate(message.get("content") or "")
        if not errors:
            report.stop_reason = R.COMPLETED
            return {"output": output, "report": report.to_json()}
        if report.repairs >= spec.max_repairs:
            raise AgentStopped(
                f"agent {spec.name!r}: the answer did not validate after {report.repairs} "
                f"repairs: {'; '.join(errors)[:500]}", R.INVALID_OUTPUT, report,
                error_class=ErrorClass.PERMANENT, extra={"errors": errors})
        report.repairs += 1
        conversation.append({"role": "user", "content": (
            "Your answer is not valid:\n- " + "\n- ".join(errors)
            + "\nAnswer again, correcting these errors.")})


def _call_model(spec: AgentSpec, env: RunEnv, request: ModelRequest,
                started: float) -> dict[str, Any]:
    """One model call (the body of a model step). Budget checks that read the clock or
    the ledger live here, so their answer is checkpointed with the step."""
    timeout = None
    if spec.limits.timeout is not None:
        timeout = spec.limits.timeout - (env.clock.now().timestamp() - started)
        if timeout <= 0:
            return {"stopped": R.TIMEOUT}
    if env.ledger is not None:
        over = env.ledger.over_cap(env.tenant)
        if over is not None:
            return {"stopped": R.TENANT_BUDGET,
                    "info": {"tenant": env.tenant, "spent_usd": over[0], "cap_usd": over[1]}}
    t0 = env.clock.monotonic()
    response = spec.adapter.complete(
        ModelRequest(request.system, request.messages, request.tools, request.turn,
                     timeout=timeout, max_output_tokens=request.max_output_tokens))
    ms = (env.clock.monotonic() - t0) * 1000
    model = response.model or spec.adapter.model
    usage = Usage(token_count(response.usage.input_tokens),
                  token_count(response.usage.output_tokens))
    cost = spec.prices.cost(model, usage)
    return {"message": response.message(), "stop": response.stop, "model": clean_text(model, 200),
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            "cost_usd": cost, "ms": ms}


def _spend_row(
    spec: AgentSpec, env: RunEnv, turn: int,
) -> Callable[[Any], dict[str, Any] | None]:
    """The ledger row of a model step's result, committed with its checkpoint."""

    def row(res: Any) -> dict[str, Any] | None:
        if not isinstance(res, dict) or "usage" not in res:
            return None  # a budget stop: nothing was spent
        return {"job_id": env.job_id, "turn": turn, "tenant": env.tenant, "agent": spec.name,
                "model": res["model"], "tokens_in": res["usage"]["input_tokens"],
                "tokens_out": res["usage"]["output_tokens"], "cost_usd": res["cost_usd"]}

    return row


def _call_tool(spec: AgentSpec, env: RunEnv, call: Mapping[str, Any]) -> dict[str, Any]:
    """One tool call (the body of a tool step). A tool's failure is the model's to handle
    and goes back to it as the tool's result; only retryable classified errors (and a
    cancel) fail the step, so the job retries and this call runs again."""
    t0 = env.clock.monotonic()
    tool = spec.tools.get(str(call.get("name")))
    is_error = True
    if tool is None:
        content = (f"error: there is no tool named {clean_text(call.get('name'), 100)!r}; "
                   f"tools: {', '.join(sorted(spec.tools)) or 'none'}")
    else:
        ctx = ToolContext(env.job_id, env.tenant, str(call.get("id")),
                          current_step_key() or f"treadle:{env.job_id}:{call.get('id')}")
        try:
            value = tool.invoke(str(call.get("arguments", "")), ctx)
            content = value if isinstance(value, str) else json.dumps(value, default=str)
            is_error = False
        except ToolArgumentError as exc:
            content = f"error: {exc}"
        except (Cancelled, TreadleError) as exc:
            if isinstance(exc, Cancelled) or exc.retryable:
                raise
            content = f"error: {exc.message}"
        except Exception as exc:  # the model decides what to do about a broken tool
            content = f"error: {type(exc).__name__}: {exc}"
    return {"content": clean_text(content, MAX_TOOL_RESULT_CHARS), "is_error": is_error,
            "ms": (env.clock.monotonic() - t0) * 1000}
