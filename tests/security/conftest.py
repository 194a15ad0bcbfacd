"""The hostile-tenant layer (ADRs 0102, 0006): attacks on the sandbox through the public surfaces.

Every test here is an attack a tenant can mount with only the library (the registry of
``DynamicWorkers``, ``SandboxManager``), the CLI (``treadle dynamic run``) or HTTP
(``POST /v1/run``). The worker's secrets are planted in the environment of this (the
worker's) process as canaries; a sandbox must never see them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port
from tests.support.sandbox import require_bwrap
from treadle import Treadle
from treadle.api import ApiConfig, start_in_thread
from treadle.core.job import Job
from treadle.dynamic import DynamicWorkers, WorkerRegistry
from treadle.sandbox import Limits, SandboxManager, WorkerSpec
from treadle.testing import migrated, run_worker
from treadle.worker import Worker

# What a worker process may hold in its environment. Canaries: unique, easy to find.
SECRETS = {
    "TREADLE_ADMIN_KEY": ADMIN_KEY,
    "TREADLE_DATABASE_URL": "postgresql://treadle:canary-db-password-7f3a@db.internal/treadle",
    "TREADLE_WEBHOOK_SECRET": "whsec-canary-5b1e0c9d",
}
FAST = Limits(timeout=2.0, cpu_seconds=2.0, memory_mb=128)


def js(code: str, limits: Limits = FAST, **kw: object) -> WorkerSpec:
    return WorkerSpec(code=code, language="javascript", limits=limits, **kw)  # type: ignore[arg-type]


def py(code: str, limits: Limits = FAST, **kw: object) -> WorkerSpec:
    return WorkerSpec(code=code, language="python", limits=limits, **kw)  # type: ignore[arg-type]


def leaked(blob: object) -> list[str]:
    """The names of the secrets found anywhere in ``blob`` (its repr)."""
    text = repr(blob)
    return [name for name, value in SECRETS.items() if value in text]


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


@pytest.fixture
def fresh_manager(secret_env: dict[str, str]) -> Iterator[SandboxManager]:
    """A manager whose every sandbox is spawned while the secrets are in the environment."""
    require_bwrap()
    mgr = SandboxManager(python_pool_size=0, js_hosts=1, get_cache_capacity=8)
    yield mgr
    mgr.close()


@pytest.fixture(scope="session")
def manager() -> Iterator[SandboxManager]:
    require_bwrap()
    mgr = SandboxManager(python_pool_size=2, js_hosts=1, get_cache_capacity=16)
    mgr.warm_up()
    yield mgr
    mgr.close()


def still_serving(mgr: SandboxManager) -> None:
    """After every attack both languages still answer correctly, for another tenant."""
    ok_js = js("function handler(input) { return {ok: input.n + 1} }")
    ok_py = py("def handler(input, env):\n    return {'ok': input['n'] + 1}")
    for spec in (ok_js, ok_py):
        assert mgr.load(spec, {"n": 1}, tenant="bystander").output == {"ok": 2}
        assert mgr.get(spec, {"n": 1}, tenant="bystander").output == {"ok": 2}


@dataclass
class Dyn:
    """An app with dynamic workers and a running worker (the library surface)."""

    app: Treadle
    workers: WorkerRegistry
    worker: Worker

    def finished(self, job_id: int, timeout: float = 30.0) -> Job:
        self.app.store.wait_for_finish([job_id], timeout)
        job = self.app.get_job(job_id)
        assert job.is_finished, f"job {job.id} still {job.status.value}"
        return job


@pytest.fixture
def dyn(sqlite_url: str, fresh_manager: SandboxManager) -> Iterator[Dyn]:
    app = Treadle(migrated(sqlite_url))
    workers = app.use(DynamicWorkers(fresh_manager)).registry
    try:
        with run_worker(app, concurrency=2) as worker:
            yield Dyn(app, workers, worker)
    finally:
        app.close()


@pytest.fixture
def dapi(sqlite_url: str, fresh_manager: SandboxManager) -> Iterator[Api]:
    """The HTTP API with dynamic workers and one worker running them (secrets planted)."""
    treadle = build_app(sqlite_url, fresh_manager)
    treadle.migrate()
    keys = tenant_keys(treadle)
    port = free_port()
    server = start_in_thread(treadle, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY, sync_window=20.0))
    try:
        with run_worker(treadle, concurrency=2):
            yield Api(f"http://127.0.0.1:{port}", treadle, keys)
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    """An app with the hostile tasks of ``tests/security/app.py``, on both stores."""
    from tests.security.app import register

    a = register(Treadle(db_url))
    yield a
    a.close()
