"""LoopBridge (ADR 0033): a thread's answers reach the event loop's awaiters with one
wake-up per burst, errors and cancellation carried as ``asyncio.wrap_future`` does."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from treadle.loop_bridge import bridge_for, wrap_future


def test_a_burst_of_answers_wakes_the_loop_once() -> None:
    async def main() -> tuple[list[int], int]:
        futures: list[Future[int]] = [Future() for _ in range(16)]
        waiters = [wrap_future(f) for f in futures]

        def answer_all() -> None:  # as the group committer answers a batch
            for i, f in enumerate(futures):
                f.set_running_or_notify_cancel()
                f.set_result(i)

        bridge = bridge_for(asyncio.get_running_loop())
        before = bridge.wakeups
        thread = threading.Thread(target=answer_all)
        # Hold the loop while the thread answers: the whole burst is then pending.
        thread.start()
        thread.join()
        results = await asyncio.gather(*waiters)
        return list(results), bridge.wakeups - before

    results, wakeups = asyncio.run(main())
    assert results == list(range(16))
    assert wakeups == 1


def test_answers_after_a_drain_wake_the_loop_again() -> None:
    async def main() -> list[int]:
        out = []
        for i in range(3):
            f: Future[int] = Future()
            waiter = wrap_future(f)
            threading.Thread(target=f.set_result, args=(i,)).start()
            out.append(await asyncio.wait_for(waiter, 10))
        return out

    assert asyncio.run(main()) == [0, 1, 2]


def test_an_error_is_raised_to_the_awaiter() -> None:
    async def main() -> None:
        f: Future[int] = Future()
        waiter = wrap_future(f)
        threading.Thread(target=f.set_exception, args=(KeyError("nope"),)).start()
        await asyncio.wait_for(waiter, 10)

    with pytest.raises(KeyError, match="nope"):
        asyncio.run(main())


def test_cancelling_the_awaiter_cancels_the_threads_future() -> None:
    async def main() -> tuple[bool, bool]:
        f: Future[int] = Future()
        task = asyncio.ensure_future(wrap_future(f))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)  # the waiter's done-callback runs
        return f.cancelled(), f.set_running_or_notify_cancel()

    cancelled, still_runnable = asyncio.run(main())
    assert cancelled and not still_runnable  # a queued submission would be withdrawn


def test_a_withdrawn_future_cancels_the_awaiter() -> None:
    async def main() -> None:
        f: Future[int] = Future()
        waiter = wrap_future(f)
        threading.Thread(target=f.cancel).start()
        await asyncio.wait_for(waiter, 10)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
