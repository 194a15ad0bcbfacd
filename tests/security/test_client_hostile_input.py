"""The remote client (ADR 0020) given hostile values by its own caller: every refusal is
one of the library's errors (``ConfigurationError``, ``InvalidInput``), raised before
anything is sent, never an httpx or ``ValueError`` escaping, and never a misleading
"cannot reach Treadle" (``Transient``, which callers retry). A real server, both stores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.e2e.api.tasks_app import build_app
from tests.support.aio import run_async
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.client import AsyncClient, Client
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import JobFilter


@pytest.fixture
def served(db_url: str) -> Iterator[Api]:
    treadle = build_app(db_url)
    treadle.migrate()
    keys = tenant_keys(treadle)
    port = free_port()
    server = start_in_thread(treadle, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY))
    try:
        yield Api(f"http://127.0.0.1:{port}", treadle, keys)
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


@pytest.mark.parametrize("url", ["http://[::1", "http://[zz]:80", "http://127.0.0.1:80/\ud800",
                                 "http://ex\ud800ample.com"])
def test_urls_that_cannot_be_parsed_or_encoded_are_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="URL"):
        Client(url, "k")
    with pytest.raises(ConfigurationError, match="URL"):
        AsyncClient(url, "k")


@pytest.mark.parametrize("key", [" ", " trd_x", "trd_x ", "trd_x\t"])
def test_keys_with_surrounding_whitespace_are_a_configuration_error(served: Api,
                                                                    key: str) -> None:
    """Before: sent as ``Bearer  `` the transport refused it, reported as the server being
    unreachable (Transient)."""
    with pytest.raises(ConfigurationError, match="API key"):
        Client(served.url, key)


def test_a_dynamic_worker_id_with_a_trailing_newline_is_refused_before_sending(
        served: Api) -> None:
    wid = "dw_" + "0" * 24
    with Client(served.url, served.keys["a"]) as client:
        for hostile in (wid + "\n", wid + "\r\n", "\n" + wid):
            with pytest.raises(InvalidInput, match="dynamic worker id"):
                client.get_dynamic_worker(hostile)
            with pytest.raises(InvalidInput, match="dynamic worker id"):
                client.run_dynamic_worker(hostile, None)
    assert served.treadle.list_jobs(JobFilter(limit=10)) == []


def test_a_wait_of_nan_seconds_is_refused_at_once(served: Api) -> None:
    """Before: NaN slipped past every comparison and the wait ended, after the client's
    read timeout, as "cannot reach Treadle" (Transient)."""
    with Client(served.url, served.keys["a"], timeout=30) as client:
        job = client.submit("noop", {})
        start = time.monotonic()
        with pytest.raises(InvalidInput, match="NaN"):
            client.wait(job.id, float("nan"))
        with pytest.raises(InvalidInput, match="NaN"):
            job.wait(float("nan"))
        assert time.monotonic() - start < 5

    async def waits() -> Any:
        async with AsyncClient(served.url, served.keys["a"], timeout=30) as client:
            with pytest.raises(InvalidInput, match="NaN"):
                await client.wait(job.id, float("nan"))

    run_async(waits())
