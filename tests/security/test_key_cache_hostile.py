"""The API-key cache (ADR 0033) against hostile keys: a cached valid key lends nothing to
keys that look like it, to another tenant, or to text that is no key at all; every
refusal is a 401 and enqueues nothing. Real SQLite and PostgreSQL, in-process ASGI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.e2e.api.tasks_app import register
from treadle.api import ApiConfig, authenticate, create_app
from treadle.api.auth import keystore_for
from treadle.app import Treadle
from treadle.core.clock import ManualClock

ADMIN = "admin-key-0123456789abcdef"


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    t = register(Treadle(db_url, clock=ManualClock()))
    yield t
    t.close()


def _jobs(app: Treadle) -> int:
    return len(app.list_jobs())


def _post(client: TestClient, raw: str) -> int:
    # As bytes: a header's non-ASCII octets reach the server as Latin-1 text.
    return client.post("/v1/jobs", json={"task": "noop"},
                       headers={b"Authorization": f"Bearer {raw}".encode("latin-1")}).status_code


def test_keys_that_resemble_a_cached_key_are_refused_and_enqueue_nothing(app: Treadle) -> None:
    _, raw = keystore_for(app).create_key("t1", "submit,read")
    with TestClient(create_app(app, ApiConfig(admin_key=ADMIN, key_cache_seconds=60))) as c:
        assert _post(c, raw) == 202  # read valid, now cached
        before = _jobs(app)
        flipped = raw[:-1] + ("A" if raw[-1] != "A" else "B")
        for hostile in (flipped, raw[:-1], raw + "x", raw + " x", raw.upper(),
                        raw + "\u00e9", raw + "\u00ff" * 600, "\u00ff" * 64):
            assert _post(c, hostile) == 401, hostile[-8:]
        assert _jobs(app) == before


def test_a_cached_key_of_one_tenant_cannot_reach_another_tenants_job(app: Treadle) -> None:
    _, raw_a = keystore_for(app).create_key("tenant-a", "submit,read")
    _, raw_b = keystore_for(app).create_key("tenant-b", "submit,read")
    with TestClient(create_app(app, ApiConfig(admin_key=ADMIN, key_cache_seconds=60))) as c:
        r = c.post("/v1/jobs", json={"task": "noop"}, headers={"Authorization": f"Bearer {raw_a}"})
        assert r.status_code == 202
        job_id = r.json()["id"]
        assert _post(c, raw_b) == 202  # b is cached now too
        for _ in range(2):  # the first read fills the cache, the second is served from it
            got = c.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {raw_b}"})
            assert got.status_code == 404
        assert app.get_job(job_id).tenant == "tenant-a"


@pytest.mark.parametrize("raw", ["\ud800", "key\udfff", "a\x00b", "\x00", "x" * 513,
                                 "x" * (50 << 20)], ids=["lone-high", "lone-low", "nul",
                                                         "only-nul", "513", "50MB"])
def test_text_that_is_no_key_is_refused_by_the_library_without_raising(
        app: Treadle, raw: str) -> None:
    config = ApiConfig(admin_key=ADMIN, key_cache_seconds=60)
    assert authenticate(app, raw, config) is None
    assert authenticate(app, raw) is None


@pytest.mark.parametrize("var", ["TREADLE_KEY_CACHE_SECONDS", "TREADLE_SYNC_WINDOW",
                                 "TREADLE_MAX_PAYLOAD_BYTES"])
@pytest.mark.parametrize("value", ["abc", "1 2", "\u00e9" * 1000, "nan", "-1", "1e400"])
def test_server_settings_from_the_environment_that_are_no_fit_number_are_a_clear_error(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    from treadle.api.server import config_from_env
    from treadle.core.errors import ConfigurationError

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError) as refused:
        config_from_env()
    assert "must" in str(refused.value)
