"""Supervised threads (ADR 0006) — every worker thread is supervised.

An exception injected once into what a background thread calls (the flusher's write,
the maintenance thread's heartbeat, the claim loop's claim, the metrics observer)
must be logged and survived: the same worker goes on completing jobs. Before the fix
each of these ended its thread (or the whole worker) for good.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.security.running import Running, finished
from treadle import JobStatus, Treadle
from treadle.core.clock import SystemClock
from treadle.core.errors import ErrorClass
from treadle.observe import NULL_OBSERVER


class Injected(RuntimeError):
    pass


class FlakyStore:
    """Proxies a store; the named method raises ``Injected`` on its first ``times`` calls."""

    def __init__(self, inner: Any, method: str, times: int = 1) -> None:
        self._inner = inner
        self._method = method
        self._left = times
        self._lock = threading.Lock()
        self.raised = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def flaky(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                fire = self._left > 0
                self._left -= fire
            if fire:
                self.raised.set()
                raise Injected(f"injected failure in {name}")
            return attr(*args, **kwargs)

        return flaky


@pytest.mark.parametrize("method", ["complete", "add_logs", "claim"])
def test_a_background_thread_survives_an_injected_exception(app: Treadle, method: str) -> None:
    store = FlakyStore(app.store, method)
    first = app.defer("say", {"line": "hello"})  # has a log line, so add_logs is called
    with Running(app, store=store):
        job = finished(app, first.id)
        assert store.raised.is_set()
        # The first job's outcome is written on the one-by-one path, or it simply
        # succeeds; it is never lost, and later jobs complete.
        assert job.status is JobStatus.SUCCEEDED, job
        for _ in range(3):
            assert finished(app, app.defer("give", {"value": 1}).id).result == 1


def test_an_outcome_that_cannot_be_written_fails_only_its_job(app: Treadle) -> None:
    # complete() keeps failing for one job's outcome: that job is failed, classified,
    # and the other outcomes in its batch are written.
    poison: set[int] = set()

    class PoisonStore(FlakyStore):
        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._inner, name)
            if name != "complete":
                return attr

            def complete(outcomes: Any) -> Any:
                if any(oc.job_id in poison and oc.kind.value == "succeeded" for oc in outcomes):
                    raise Injected("this outcome cannot be written")
                return attr(outcomes)

            return complete

    bad = app.defer("give", {"value": "poison"})
    poison.add(bad.id)
    with Running(app, store=PoisonStore(app.store, "complete")):
        job = finished(app, bad.id)
        assert job.status is JobStatus.FAILED and job.error is not None
        assert job.error.error_class is ErrorClass.INVALID_OUTPUT
        assert finished(app, app.defer("give", {"value": 2}).id).result == 2


def test_a_failing_observer_does_not_stop_the_flusher(app: Treadle) -> None:
    class BadObserver(type(NULL_OBSERVER)):  # type: ignore[misc]
        def finished(self, *args: Any) -> None:
            raise Injected("metrics backend down")

    with Running(app) as worker:
        worker.observer = BadObserver()
        for value in range(3):
            assert finished(app, app.defer("give", {"value": value}).id).result == value


class MaintenanceTripClock(SystemClock):
    """Raises once when the maintenance thread reads it (while enforcing deadlines)."""

    def __init__(self) -> None:
        self.tripped = threading.Event()

    def monotonic(self) -> float:
        if threading.current_thread().name == "treadle-maint" and not self.tripped.is_set():
            self.tripped.set()
            raise Injected("clock failure in the maintenance thread")
        return super().monotonic()


def test_the_maintenance_thread_survives_and_still_enforces_timeouts(app: Treadle) -> None:
    clock = MaintenanceTripClock()
    with Running(app, clock=clock, concurrency=1):
        job = finished(app, app.defer("spin").id)
        assert clock.tripped.is_set()
        assert job.status is JobStatus.FAILED and job.error is not None
        assert job.error.error_class is ErrorClass.TIMEOUT
        assert finished(app, app.defer("give", {"value": 3}).id).result == 3
