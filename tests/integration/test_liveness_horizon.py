"""Workers competing for the liveness leadership (ADR 0018) hold no snapshot while they
do not lead: a backend blocked waiting for the leader lock held the database's xmin
horizon, so no dead row could be vacuumed nor dead index entry skipped, and every claim
over the jobs' partial indexes slowed down with each job done (issue 13, the backlog
bench). Leadership still passes to a survivor when the leader's session ends."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from treadle.store.postgres.store import PostgresStore


def _holding_horizon(url: str) -> list[Any]:
    """Backends of this database other than ours that hold an xmin while not in a query."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_xmin IS NOT NULL").fetchall()


def test_workers_waiting_to_lead_hold_no_snapshot(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(3)]
    try:
        for i, s in enumerate(stores):
            assert s.register_worker(f"w{i}")
        for s in stores:
            s.reap_dead()  # each wants a pass: one leads, the others only tried
        assert _holding_horizon(pg_url) == []
    finally:
        for i, s in enumerate(stores):
            s.unregister_worker(f"w{i}")
            s.close()


def test_the_leadership_passes_to_a_survivor_when_the_leader_goes(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        assert a.register_worker("a") and b.register_worker("b")
        a.reap_dead()  # a leads
        b.reap_dead()
        leaders = [s for s in (a, b) if any(x.leader for x in s._sessions.values())]
        assert leaders == [a]
        a.unregister_worker("a")  # its session ends: its locks go with it
        # ...once its backend has exited, which the server does after the client has
        # gone: the survivor takes the lead at one of its next passes.
        deadline = time.monotonic() + 10
        while True:
            b.reap_dead()
            if any(x.leader for x in b._sessions.values()):
                break
            assert time.monotonic() < deadline, "the survivor never took the lead"
            time.sleep(0.02)
    finally:
        b.unregister_worker("b")
        a.close()
        b.close()
