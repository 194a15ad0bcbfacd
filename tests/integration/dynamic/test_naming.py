"""One name per concept (ADR 0023): the dynamic-worker registry, API prefix and UI page
under their new names, and the old spellings still working, marked deprecated."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from treadle import Treadle
from treadle.core.errors import ConfigurationError
from treadle.dynamic import DynamicWorkers
from treadle.kinds import RenamedPrefix
from treadle.ui import mount

SINCE = datetime(2026, 11, 30, tzinfo=UTC)


def test_dynamic_workers_is_the_registry_and_workers_a_deprecated_alias(db_url: str) -> None:
    app = Treadle(db_url)
    try:
        with pytest.raises(ConfigurationError, match=r"app.use\(DynamicWorkers\(\)\)"):
            _ = app.dynamic_workers
        with pytest.warns(DeprecationWarning, match="use app.dynamic_workers"):
            assert app.workers is None
        registry = app.use(DynamicWorkers()).registry
        assert app.dynamic_workers is registry
        with pytest.warns(DeprecationWarning, match="use app.dynamic_workers"):
            assert app.workers is registry
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the new name warns about nothing
            assert app.dynamic_workers is registry
    finally:
        app.close()


def test_renamed_prefix_matches_whole_segments() -> None:
    r = RenamedPrefix("/v1/workers", "/v1/dynamic-workers", since=SINCE)
    assert r.rewrite("/v1/workers") == "/v1/dynamic-workers"
    assert r.rewrite("/v1/workers/dw_1/run") == "/v1/dynamic-workers/dw_1/run"
    assert r.rewrite("/v1/workers/") == "/v1/dynamic-workers/"
    for other in ("/v1/workersX", "/v1/worker", "/v2/workers", "/v1/dynamic-workers", ""):
        assert r.rewrite(other) is None, other


@pytest.mark.parametrize("old,new", [("v1/workers", "/v1/x"), ("/v1/workers/", "/v1/x"),
                                     ("/v1/workers", "/v1/x/"), ("/v1/workers", "")])
def test_renamed_prefix_refuses_malformed_prefixes(old: str, new: str) -> None:
    with pytest.raises(ValueError, match="renamed API prefix"):
        RenamedPrefix(old, new, since=SINCE)


def test_renamed_prefix_needs_an_aware_date() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RenamedPrefix("/a", "/b", since=datetime(2026, 11, 30))


def test_the_editor_page_moved_and_its_old_address_redirects(db_url: str) -> None:
    app = Treadle(db_url)
    app.use(DynamicWorkers())
    web = FastAPI()
    mount(web, app, secret="s" * 32)
    try:
        with TestClient(web) as client:
            new = client.get("/dynamic-workers/new", follow_redirects=False)
            assert new.status_code in (200, 303), new.text  # the page, or the login first
            for path, method in (("/workers/new", "GET"), ("/workers/run", "POST"),
                                 ("/workers/save", "POST")):
                r = client.request(method, path, follow_redirects=False)
                assert r.status_code == 308, (path, r.text)
                assert r.headers["location"] == path.replace("/workers/", "/dynamic-workers/")
            assert client.get("/workers/other", follow_redirects=False).status_code == 404
            r = client.get("/workers/new?language=python&x=%00%F0%9F%90%8D",
                           follow_redirects=False)
            assert r.headers["location"] == "/dynamic-workers/new?language=python&x=%00%F0%9F%90%8D"
    finally:
        app.close()


def test_worker_options_and_its_deprecated_name(db_url: str) -> None:
    app = Treadle(db_url)
    try:
        app.use(DynamicWorkers())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            options = app.worker_options()
        assert set(options) == {"on_finished", "services", "tracing"} and options["on_finished"]
        with pytest.warns(DeprecationWarning, match=r"use app.worker_options\(\)"):
            old = app.worker_hooks()
        assert old == options
    finally:
        app.close()
