"""The reconnect schedule of the PostgreSQL store, driven by a fake clock (no server)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import psycopg
import psycopg_pool
import pytest
import structlog
from psycopg import errors as pgerrors

from treadle.core.errors import StoreUnavailable
from treadle.logs import route_stdlib
from treadle.store.postgres.retry import (
    NotSent,
    Reconnect,
    ReconnectPolicy,
    is_connection_lost,
)


class FakeTime:
    """monotonic() and sleep() for Reconnect: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def reconnect(t: FakeTime, jitter: float = 0.5, **policy: float) -> Reconnect:
    return Reconnect(ReconnectPolicy(**policy), monotonic=t.monotonic, sleep=t.sleep,
                     jitter=lambda: jitter)


def failing(times: int, exc: Exception, result: str = "ok") -> Callable[[float], str]:
    calls = {"n": 0}

    def attempt(budget: float) -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


def admin_shutdown() -> psycopg.Error:
    return pgerrors.AdminShutdown("terminating connection due to administrator command")


def test_a_read_is_retried_with_growing_jittered_pauses_until_it_succeeds() -> None:
    t = FakeTime()
    attempt = failing(4, admin_shutdown())
    assert reconnect(t, jitter=0.5, first_delay=0.1, max_delay=0.3).run(
        "get_job", attempt, idempotent=True) == "ok"
    # jitter 0.5 -> factor 1.0: 0.1, 0.2, then capped at 0.3
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_jitter_spreads_each_pause_between_half_and_one_and_a_half_times() -> None:
    low, high = FakeTime(), FakeTime()
    reconnect(low, jitter=0.0, first_delay=0.1).run("r", failing(1, admin_shutdown()),
                                                     idempotent=True)
    reconnect(high, jitter=0.999, first_delay=0.1).run("r", failing(1, admin_shutdown()),
                                                        idempotent=True)
    assert low.sleeps == pytest.approx([0.05]) and high.sleeps == pytest.approx([0.1499])


def test_the_database_staying_down_raises_store_unavailable_at_the_deadline() -> None:
    t = FakeTime()
    budgets: list[float] = []

    def attempt(budget: float) -> str:
        budgets.append(budget)
        t.now += 0.5  # each attempt spends time waiting for a connection
        raise NotSent(psycopg_pool.PoolTimeout("couldn't get a connection"))

    with pytest.raises(StoreUnavailable, match="unreachable for 5s") as info:
        reconnect(t, deadline=5.0, first_delay=0.2, max_delay=1.0).run(
            "get_job", attempt, idempotent=True)
    assert 5.0 <= t.now <= 5.5  # gave up at the deadline, not before, not much after
    assert budgets[0] == pytest.approx(5.0) and budgets == sorted(budgets, reverse=True)
    assert info.value.detail["attempts"] == len(budgets)


def test_a_write_that_may_have_been_sent_is_not_retried() -> None:
    t = FakeTime()
    attempt = failing(1, admin_shutdown())
    with pytest.raises(StoreUnavailable, match="may or may not have been applied") as info:
        reconnect(t).run("enqueue", attempt, idempotent=False)
    assert attempt.calls["n"] == 1 and t.sleeps == []  # type: ignore[attr-defined]
    assert info.value.detail == {"operation": "enqueue", "maybe_applied": True}


def test_a_write_is_retried_when_nothing_was_sent() -> None:
    t = FakeTime()
    attempt = failing(2, NotSent(psycopg_pool.PoolTimeout("no connection")))
    assert reconnect(t).run("enqueue", attempt, idempotent=False) == "ok"
    assert attempt.calls["n"] == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("exc", [
    pgerrors.UniqueViolation("duplicate key"),
    pgerrors.QueryCanceled("canceling statement due to statement timeout"),
    pgerrors.SyntaxError("syntax error"),
    ValueError("not a database error"),
])
def test_other_errors_propagate_unchanged_and_at_once(exc: Exception) -> None:
    t = FakeTime()
    attempt = failing(1, exc)
    with pytest.raises(type(exc)):
        reconnect(t).run("get_job", attempt, idempotent=True)
    assert attempt.calls["n"] == 1 and t.sleeps == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("exc", "lost"), [
    (pgerrors.AdminShutdown("shutdown"), True),
    (pgerrors.CrashShutdown("crash"), True),
    (pgerrors.CannotConnectNow("starting up"), True),
    (pgerrors.ConnectionFailure("08006"), True),
    (psycopg.OperationalError("server closed the connection unexpectedly"), True),
    (psycopg.InterfaceError("the connection is closed"), True),
    (psycopg_pool.PoolTimeout("couldn't get a connection"), True),
    (pgerrors.SerializationFailure("could not serialize"), False),
    (pgerrors.UndefinedTable("no such table"), False),
    (psycopg.ProgrammingError("bad use"), False),
])
def test_what_counts_as_a_lost_connection(exc: Exception, lost: bool) -> None:
    assert is_connection_lost(exc) is lost


@pytest.fixture
def captured_structlog() -> Iterator[list[structlog.typing.EventDict]]:
    """Capture every structlog event (all levels), then restore the configuration."""
    saved = structlog.get_config()
    cap = structlog.testing.LogCapture()
    structlog.configure(processors=[cap], cache_logger_on_first_use=False,
                        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield cap.entries
    finally:
        structlog.configure(**saved)


def test_library_warnings_reach_structlog_demoted_and_not_stderr(
    captured_structlog: list[structlog.typing.EventDict], capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in an application that never configured logging (pytest puts its own handler on
    # the root logger, and the router then leaves records to it).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    route_stdlib("psycopg", demote={logging.WARNING: logging.INFO})
    pool_log = logging.getLogger("psycopg.pool")
    level = pool_log.level  # the CLI quiets this logger; an in-process CLI test may have run
    pool_log.setLevel(logging.NOTSET)
    try:
        pool_log.warning("discarding closed connection: %s", "<conn>")
    finally:
        pool_log.setLevel(level)
    assert capfd.readouterr().err == ""
    assert {"event": "discarding closed connection: <conn>", "log_level": "info"}.items() <= \
        captured_structlog[-1].items()
