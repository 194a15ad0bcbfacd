"""Per-key concurrency limits (ADR 0010): enforced in the claim on both stores."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from treadle import Treadle
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.testing import ManualClock


def _app(db_url: str, clock: ManualClock | None = None) -> Treadle:
    app = Treadle(db_url, clock=clock) if clock else Treadle(db_url)

    @app.task(name="sync", concurrency=("user:{user}", 2))
    def sync(user: str, n: int = 0) -> None:
        return None

    return app


def test_claim_never_exceeds_the_key_limit(db_url: str) -> None:
    clock = ManualClock()
    app = _app(db_url, clock)
    sync = app.tasks["sync"]
    sync.defer_many([{"user": "ann", "n": i} for i in range(10)])
    sync.defer_many([{"user": "bob", "n": i} for i in range(3)])
    first = app.store.claim(queues=None, worker="w1", limit=8, lease_seconds=30)
    more = app.store.claim(queues=None, worker="w2", limit=8, lease_seconds=30)
    keys = [j.concurrency_key for j in first + more]
    assert keys.count("user:ann") == 2 and keys.count("user:bob") == 2
    # finishing one ann job makes room for exactly one more
    from treadle.core.outcome import Outcome, OutcomeKind

    ann = next(j for j in first + more if j.concurrency_key == "user:ann")
    app.store.complete([Outcome(ann.id, ann.lease_token, OutcomeKind.SUCCEEDED, "w")])
    again = app.store.claim(queues=["default"], worker="w3", limit=8, lease_seconds=30)
    assert [j.concurrency_key for j in again] == ["user:ann"]
    app.close()


def test_four_workers_never_run_more_than_two_per_key(db_url: str) -> None:
    """4 claimers x 8 slots, observed start/end times: at most 2 overlap per key."""
    app = _app(db_url)
    app.tasks["sync"].defer_many([{"user": "ann", "n": i} for i in range(16)])
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()
    from treadle.core.outcome import Outcome, OutcomeKind

    def worker(wid: int) -> None:
        store = app.store
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = store.claim(queues=None, worker=f"w{wid}", limit=8, lease_seconds=30)
            if not jobs:
                with lock:
                    if len(spans) >= 16:
                        return
                time.sleep(0.01)
                continue
            start = time.monotonic()
            time.sleep(0.05)
            end = time.monotonic()
            with lock:
                spans.extend((start, end) for _ in jobs)
            store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w") for j in jobs])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spans) == 16
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    assert peak <= 2
    app.close()


def test_bad_keys_and_limits_are_refused_naming_the_task(sqlite_url: str) -> None:
    app = Treadle(sqlite_url)
    with pytest.raises(ConfigurationError, match="limit"):
        app.task(name="neg", concurrency=("k", -1))(lambda: None)

    def boom(payload: dict[str, Any]) -> str:
        raise RuntimeError("no key")

    t = app.task(name="raiser", concurrency=(boom, 1))(lambda: None)
    with pytest.raises(InvalidInput, match="raiser"):
        t.new_job({})
    u = app.task(name="long", concurrency=("{x}", 1))(lambda x: None)
    with pytest.raises(InvalidInput, match="long"):
        u.new_job({"x": "a" * 201})
    with pytest.raises(InvalidInput, match="long"):
        u.new_job({"y": 1})
    app.close()
