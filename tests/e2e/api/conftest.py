"""A real API server (uvicorn on a free port) and real workers, per backend.

The shared ``db_url`` fixture (tests/conftest.py) gives a migrated database on
SQLite and on PostgreSQL; everything here runs against it for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.api.auth import keystore_for
from treadle.app import Treadle
from treadle.core.retry import RetryPolicy
from treadle.egress import EgressPolicy
from treadle.testing import run_worker
from treadle.webhooks import register_builtin_tasks
from treadle.worker import Worker

ROOT = Path(__file__).resolve().parents[3]
ADMIN_KEY = "test-admin-key-0123456789"
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
FAST_DELIVERY = RetryPolicy(base=0.2, factor=2.0, cap=1.0)


@dataclass
class Api:
    url: str
    treadle: Treadle
    keys: dict[str, str] = field(default_factory=dict)  # label -> raw key

    def client(self, key: str | None = "a", **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys.get(key, key)}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kw)  # type: ignore[arg-type]


def tenant_keys(treadle: Treadle) -> dict[str, str]:
    """Keys for tenants a and b (submit+read), a read-only key of a, and the admin key."""
    ks = keystore_for(treadle)
    return {
        "a": ks.create_key("tenant-a", "submit,read")[1],
        "b": ks.create_key("tenant-b", "submit,read")[1],
        "a_read": ks.create_key("tenant-a", "read")[1],
        "admin": ADMIN_KEY,
    }


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    """Server in a thread of this process, with keys for tenants a and b."""
    treadle = build_app(db_url)
    # Callback receivers in these tests listen on loopback, which the egress policy
    # refuses by default: allow it explicitly, as an operator would (TREADLE_EGRESS_ALLOW).
    treadle.egress = EgressPolicy.parse("127.0.0.1/32")
    treadle.migrate()
    register_builtin_tasks(treadle, WEBHOOK_SECRET, retry_policy=FAST_DELIVERY)
    keys = tenant_keys(treadle)
    port = free_port()
    config = ApiConfig(admin_key=ADMIN_KEY, webhook_secret=WEBHOOK_SECRET, sync_window=10.0)
    server = start_in_thread(treadle, host="127.0.0.1", port=port, config=config)
    try:
        yield Api(f"http://127.0.0.1:{port}", treadle, keys)
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def api_worker(treadle: Treadle, **cfg: Any) -> AbstractContextManager[Worker]:
    """An in-process worker tuned for these tests (treadle.testing.run_worker)."""
    options: dict[str, Any] = {"poll_interval": 0.5, "reap_interval": 0.5, **cfg}
    return run_worker(treadle, **options)


@pytest.fixture
def worker(api: Api) -> Iterator[Worker]:
    with api_worker(api.treadle) as w:
        yield w


def treadle_cli(*args: str, env: dict[str, str] | None = None,
                **kw: object) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "treadle", *args], cwd=ROOT, env=full_env, text=True, **kw
    )


def wait_finished(client: httpx.Client, job_id: int, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, object] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished: {job}")
        time.sleep(0.05)
