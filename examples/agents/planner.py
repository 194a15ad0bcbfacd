"""Weekly campaign planner: an agent on a periodic schedule, offline.

    python -m examples.agents.planner            # a 2-second "week", runs three times

In production the schedule is ``every=7 * 24 * 3600`` and the scheduler of any worker
(``treadle worker``) enqueues exactly one run per week, however many workers run.
"""

from __future__ import annotations

import sys
import time

from examples.agents.common import SCRIPTS, temp_db, worker
from treadle import Treadle
from treadle.agents import tool
from treadle.core.job import JobKind
from treadle.store import JobFilter

WEEK = 7 * 24 * 3600


@tool
def sales_last_week() -> dict[str, int]:
    """Units sold last week per category."""
    return {"mugs": 112, "teapots": 31, "coasters": 240}


def build(url: str, every: float = WEEK) -> Treadle:
    app = Treadle(url)
    planner = app.agent(
        name="weekly_planner", model=f"scripted:{SCRIPTS / 'planner.json'}",
        instructions="Propose next week's banner and landing-page angle from last week's "
                     "sales.",
        tools=[sales_last_week],
        output={"type": "object", "required": ["banner", "landing_angle"],
                "properties": {"banner": {"type": "string"},
                               "landing_angle": {"type": "string"}}},
        max_iterations=4, timeout=60,
    )
    planner.schedule(every, input="Plan the campaign for next week.")
    return app


def main(url: str | None = None, every: float = 2.0, runs: int = 3) -> int:
    app = build(url or temp_db(), every)
    with worker(app, scheduler=True):
        deadline = time.monotonic() + every * (runs + 2)
        while time.monotonic() < deadline:
            done = [j for j in app.list_jobs(JobFilter(limit=100))
                    if j.kind is JobKind.AGENT and j.is_finished]
            if len(done) >= runs:
                break
            time.sleep(0.2)
    for job in sorted(done, key=lambda j: j.id)[:runs]:
        answer = job.result["output"] if job.result else job.error
        print(f"run #{job.id} ({job.status.value}): {answer}")
    app.close()
    return 0 if len(done) >= runs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
