"""``enqueue_async`` through the loop bridge (ADR 0033) on real SQLite and PostgreSQL:
concurrent submissions from one event loop each get their own durable job, and one
cancelled while its batch waits is withdrawn (nothing stored)."""

from __future__ import annotations

import asyncio

from tests.integration.test_group_commit import Blockers, app  # noqa: F401
from treadle import Treadle


def test_async_submissions_get_their_own_jobs_and_a_cancelled_one_is_withdrawn(
        app: Treadle) -> None:  # noqa: F811
    echo = app.get_task("echo")

    async def main() -> list[object]:
        with Blockers(app) as blockers:  # the committer's lanes are held: these queue
            tasks = [asyncio.ensure_future(app.enqueue_async([echo.new_job({"n": i, "who": "x"})]))
                     for i in range(8)]
            await asyncio.sleep(0)  # each task submits, then awaits its answer
            blockers.wait_queued(8)
            tasks[3].cancel()
            await asyncio.sleep(0)  # the cancellation reaches the queued submission
        # How many wake-ups the answers take depends on how the committer batches them
        # and on thread scheduling; tests/unit/test_loop_bridge.py pins one per burst.
        return await asyncio.gather(*tasks, return_exceptions=True)

    done = asyncio.run(main())
    assert isinstance(done[3], asyncio.CancelledError)
    answered = [handles[0] for handles in done if isinstance(handles, list)]
    assert [h.job.payload["n"] for h in answered] == [0, 1, 2, 4, 5, 6, 7]
    assert all(h.created for h in answered)
    stored = sorted(j.payload["n"] for j in app.list_jobs() if j.payload["who"] == "x")
    assert stored == [0, 1, 2, 4, 5, 6, 7]
