"""Durable LLM agents: tools, model adapters, budgets, validated output (ADR, docs/agents.md).

::

    from treadle.agents import tool

    @tool
    def lookup_product(sku: str) -> dict:
        \"\"\"Look up a product by SKU.\"\"\"

    rewriter = app.agent(name="rewriter", model="openai:gpt-4.1-mini",
                         instructions="Rewrite the product copy ...",
                         tools=[lookup_product], output=Copy, max_iterations=10)
    rewriter.defer(input="SKU A1").wait().result  # {"output": ..., "report": ...}

A run is a job of kind ``agent`` whose every model call and tool call is a checkpointed
workflow step: a crashed run resumes at the first unfinished call.
"""

from treadle.agents.adapters import resolve as resolve_model
from treadle.agents.agent import Agent
from treadle.agents.messages import (
    ModelAdapter,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from treadle.agents.plugin import Agents
from treadle.agents.pricing import DEFAULT_PRICES, Price, PriceTable
from treadle.agents.report import AgentStopped, Limits, Report
from treadle.agents.sources import Source
from treadle.agents.tools import Tool, ToolContext, tool

__all__ = [
    "DEFAULT_PRICES",
    "Agent",
    "AgentStopped",
    "Agents",
    "Limits",
    "ModelAdapter",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "PriceTable",
    "Report",
    "Source",
    "Tool",
    "ToolCall",
    "ToolContext",
    "ToolSpec",
    "Usage",
    "resolve_model",
    "tool",
]
