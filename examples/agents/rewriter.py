"""Bulk product-description rewriter: 40 runs in one ``defer_many``, offline.

    python -m examples.agents.rewriter

The model is ``scripted:`` (a file of answers) so this runs without a network or a key;
swap in ``model="openai:gpt-4.1-mini"`` (with ``OPENAI_API_KEY``) for the real thing.
Each run looks the product up with a tool and must answer a valid ``Copy``.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel

from examples.agents.common import SCRIPTS, temp_db, worker
from treadle import JobStatus, Treadle
from treadle.agents import Agents, tool

CATALOGUE = {f"SKU-{i:03d}": {"name": f"Mug no. {i}", "colour": ["blue", "green"][i % 2],
                              "supplier_copy": "mug. good. ceramic."} for i in range(40)}


class Copy(BaseModel):
    title: str
    body: str


@tool
def lookup_product(sku: str) -> dict[str, Any]:
    """Look up a product in the catalogue.

    Args:
        sku: the product's stock-keeping unit, e.g. SKU-001
    """
    if sku not in CATALOGUE:
        raise KeyError(f"no product {sku}")
    return CATALOGUE[sku]


def build(url: str) -> Treadle:
    app = Treadle(url)
    app.agent(
        name="rewriter", model=f"scripted:{SCRIPTS / 'rewriter.json'}",
        instructions="Rewrite the product copy: a short title and a warm, factual body.",
        tools=[lookup_product], output=Copy,
        max_iterations=6, max_tool_calls=10, budget_usd=0.05, timeout=120,
    )
    return app


def main(url: str | None = None) -> int:
    app = build(url or temp_db())
    rewriter = app.get_task("rewriter")
    handles = rewriter.defer_many({"input": sku} for sku in CATALOGUE)  # one transaction
    with worker(app):
        app.store.wait_for_finish([h.id for h in handles], 120)
    jobs = [h.refresh() for h in handles]
    ok = [j for j in jobs if j.status is JobStatus.SUCCEEDED]
    print(f"{len(ok)}/{len(jobs)} products rewritten")
    print("first:", ok[0].result["output"] if ok else None)
    for spend in app.plugin(Agents).ledger.by_tenant():
        print(f"tenant {spend.tenant}: {spend.runs} runs, {spend.calls} model calls, "
              f"{spend.tokens_in}+{spend.tokens_out} tokens, ${spend.cost_usd:.4f}")
    app.close()
    return 0 if len(ok) == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
