"""The app the SIGKILL proof's worker processes serve: an openai: agent against the
test's stub server (its URL in AGENT_STUB_URL), with a slow tool that leaves marks."""

from __future__ import annotations

import os
import time
from pathlib import Path

from treadle import Treadle
from treadle.agents import tool
from treadle.agents.adapters.openai_chat import OpenAIAdapter

app = Treadle(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle.db"))
MARKS = Path(os.environ.get("AGENT_MARKS", "."))


def _mark(line: str) -> None:
    with open(MARKS / f"{os.getpid()}.log", "a") as f:
        f.write(line + "\n")


@tool
def slow(n: int) -> str:
    """A tool that takes a while."""
    _mark(f"start {n}")
    time.sleep(float(os.environ.get("AGENT_TOOL_SECONDS", "0.5")))
    _mark(f"end {n}")
    return f"done {n}"


agent = app.agent(
    name="proof", tools=[slow], max_iterations=10,
    model=OpenAIAdapter("gpt-4.1-mini", base_url=os.environ.get("AGENT_STUB_URL", ""),
                        api_key="stub", stream=True),
)
