"""API keys are remembered for a bounded time (ADR 0033), on real SQLite and PostgreSQL.

A key revoked through this process is refused at once; one revoked by another process
(here: another ``Treadle`` on the same database, as ``treadle keys revoke`` or another
server process would) is refused once ``key_cache_seconds`` have passed since the read
that found it valid. The clock is a ``ManualClock``: nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.e2e.api.tasks_app import register
from treadle.api import ApiConfig, authenticate, create_app
from treadle.api.auth import keystore_for
from treadle.api.fastpath import TreadleAPI
from treadle.app import Treadle
from treadle.core.clock import ManualClock

ADMIN = "admin-key-0123456789abcdef"
TTL = 1.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(db_url: str, clock: ManualClock) -> Iterator[Treadle]:
    t = register(Treadle(db_url, clock=clock))
    yield t
    t.close()


@pytest.fixture
def elsewhere(db_url: str) -> Iterator[Treadle]:
    """Another process's view of the same database (its own store and key store)."""
    t = Treadle(db_url)
    yield t
    t.close()


def _submit(client: TestClient, raw: str) -> int:
    return client.post("/v1/jobs", json={"task": "noop"},
                       headers={"Authorization": f"Bearer {raw}"}).status_code


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_time(
        app: Treadle, elsewhere: Treadle, clock: ManualClock) -> None:
    config = ApiConfig(admin_key=ADMIN, key_cache_seconds=TTL)
    key, raw = keystore_for(elsewhere).create_key("t1", "submit,read")
    web = create_app(app, config)
    assert isinstance(web, TreadleAPI) and web.submit_fast_path is not None
    with TestClient(web) as client:
        assert _submit(client, raw) == 202  # read, found valid, remembered
        served = web.submit_fast_path.served
        assert keystore_for(elsewhere).revoke(key.id)
        clock.advance(TTL * 0.9)
        assert _submit(client, raw) == 202  # within the bound: still remembered
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {raw}"}
                          ).status_code == 200  # the FastAPI routes use the same cache
        clock.advance(TTL * 0.1)
        assert _submit(client, raw) == 401  # the bound has passed: read again, refused
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {raw}"}
                          ).status_code == 401
        clock.advance(TTL * 10)
        assert _submit(client, raw) == 401  # a refused key is never remembered
        assert web.submit_fast_path.served == served + 1
    jobs = app.list_jobs()
    assert len(jobs) == 2 and {j.tenant for j in jobs} == {"t1"}


def test_a_key_revoked_here_is_refused_at_once(app: Treadle) -> None:
    config = ApiConfig(admin_key=ADMIN, key_cache_seconds=60)
    key, raw = keystore_for(app).create_key("t1", "submit")
    with TestClient(create_app(app, config)) as client:
        assert _submit(client, raw) == 202
        assert keystore_for(app).revoke(key.id)
        assert _submit(client, raw) == 401
    assert authenticate(app, raw, config) is None


def test_a_key_created_elsewhere_works_at_once_and_scopes_still_hold(
        app: Treadle, elsewhere: Treadle) -> None:
    config = ApiConfig(admin_key=ADMIN, key_cache_seconds=60)
    with TestClient(create_app(app, config)) as client:
        assert _submit(client, "trd_not-yet-a-key") == 401  # an unknown key: not remembered
        _, reader = keystore_for(elsewhere).create_key("t2", "read")
        assert _submit(client, reader) == 403
        assert _submit(client, reader) == 403  # remembered, and still without "submit"
        _, submitter = keystore_for(elsewhere).create_key("t2", "submit")
        assert _submit(client, submitter) == 202
    assert [j.tenant for j in app.list_jobs()] == ["t2"]


def test_without_a_config_or_with_zero_seconds_every_request_reads(
        app: Treadle, elsewhere: Treadle) -> None:
    key, raw = keystore_for(elsewhere).create_key("t1", "submit")
    config = ApiConfig(admin_key=ADMIN, key_cache_seconds=0)
    assert authenticate(app, raw, config) is not None
    assert authenticate(app, raw) is not None  # no config: a read
    keystore_for(elsewhere).revoke(key.id)
    assert authenticate(app, raw, config) is None
    assert authenticate(app, raw) is None
    assert len(keystore_for(app).cache) == 0
