"""The run report and the budgets it is checked against.

Everything in the report is recomputed from the step log on every replay (each model
step stores its usage, cost and time), so budgets hold across crashes and resumes and
tokens spent before a crash stay counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from treadle.core.errors import ConfigurationError, ErrorClass, TreadleError
from treadle.core.storable import finite

# stop_reason values
COMPLETED = "completed"
MAX_ITERATIONS = "max_iterations"
MAX_TOOL_CALLS = "max_tool_calls"
MAX_TOKENS = "max_tokens"
BUDGET_USD = "budget_usd"
TENANT_BUDGET = "tenant_budget"
TIMEOUT = "timeout"
INVALID_OUTPUT = "invalid_output"


@dataclass(frozen=True)
class Limits:
    max_iterations: int = 10
    max_tool_calls: int = 30
    max_tokens: int | None = None  # input + output over the whole run
    budget_usd: float | None = None
    timeout: float | None = 300.0  # wall time of the run, across attempts

    def __post_init__(self) -> None:
        # A budget of NaN would compare false with every spend: never enforced.
        for name in ("max_iterations", "max_tool_calls", "max_tokens"):
            value = getattr(self, name)
            if (value is not None or name != "max_tokens") and not _positive_int(value):
                raise ConfigurationError(f"{name} must be a positive integer"
                                         + (" or None" if name == "max_tokens" else ""))
        if self.budget_usd is not None and not (_number(self.budget_usd)
                                                and self.budget_usd >= 0):
            raise ConfigurationError("budget_usd must be a finite number >= 0 or None")
        if self.timeout is not None and not (_number(self.timeout) and self.timeout > 0):
            raise ConfigurationError("timeout must be a positive finite number or None")


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and finite(value)


def _positive_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


@dataclass
class Report:
    turns: int = 0
    tool_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    stop_reason: str | None = None
    model_ms: float = 0.0
    tool_ms: float = 0.0
    repairs: int = 0
    tool_errors: int = 0
    model: str = ""
    context: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cost_usd"] = round(self.cost_usd, 8)
        out["model_ms"] = round(self.model_ms, 3)
        out["tool_ms"] = round(self.tool_ms, 3)
        return out

    def over(self, limits: Limits) -> str | None:
        """The budget this run has spent, if any (checked before each model call)."""
        if self.turns >= limits.max_iterations:
            return MAX_ITERATIONS
        if limits.max_tokens is not None and self.tokens_in + self.tokens_out >= limits.max_tokens:
            return MAX_TOKENS
        if limits.budget_usd is not None and self.cost_usd >= limits.budget_usd:
            return BUDGET_USD
        return None


class AgentStopped(TreadleError):
    """A run stopped before a valid answer: a budget ran out, or the output never
    validated. ``detail`` carries ``stop_reason`` and the report."""

    def __init__(self, message: str, stop_reason: str, report: Report, *,
                 error_class: ErrorClass = ErrorClass.RESOURCE_EXHAUSTED,
                 extra: dict[str, Any] | None = None) -> None:
        report.stop_reason = stop_reason
        super().__init__(message, detail={"stop_reason": stop_reason,
                                          "report": report.to_json(), **(extra or {})})
        self.error_class = error_class  # per instance: invalid output is permanent
        self.stop_reason = stop_reason
        self.report = report
