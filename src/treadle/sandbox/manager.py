"""SandboxManager: runs dynamic workers fresh (``load``) or warm (``get``), thread-safe."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from treadle.core.errors import InvalidInput, TreadleError
from treadle.sandbox.bindings import Bindings, HostCalls, KVStore, MemoryKV
from treadle.sandbox.cache import LruCache
from treadle.sandbox.js_host import mini_racer_dir
from treadle.sandbox.js_pool import JsHostPool
from treadle.sandbox.limits import Limits
from treadle.sandbox.pool import WarmPool
from treadle.sandbox.py_host import PyInstance
from treadle.sandbox.spec import Mode, RunResult, RunUsage, WorkerSpec, worker_id


class _PyWarm:
    """A cached Python ``get`` instance and the lock that makes it single-use at a time."""

    def __init__(self, inst: PyInstance) -> None:
        self.inst = inst
        self.lock = threading.Lock()


class _JsWarm:
    """Where a cached JavaScript context lives: host index and that host's generation."""

    def __init__(self, host: int, generation: int, ctx_key: str) -> None:
        self.host = host
        self.generation = generation
        self.ctx_key = ctx_key


def _encode_input(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"input is not JSON: {exc}") from None


class SandboxManager:
    """Runs dynamic workers in sandboxes. Safe to call from many worker threads.

    * ``load`` runs the code in a fresh sandbox that is discarded afterwards.
    * ``get`` runs it in a warm instance cached per ``(tenant, worker_id)`` (LRU bounded by
      ``get_cache_capacity`` per language and ``get_idle_seconds``); instances may be
      dropped at any time, in which case the next ``get`` starts a new one.

    Every failure is raised as a classified :class:`treadle.core.errors.TreadleError`;
    whatever the code does, the manager keeps serving the next run.
    """

    def __init__(
        self,
        *,
        python_pool_size: int = 2,
        js_hosts: int = 1,
        js_hosts_max: int | None = None,
        get_cache_capacity: int = 64,
        get_idle_seconds: float = 300.0,
        tmp_mb: int = 64,
        js_host_data_mb: int = 1024,
        kv_for_tenant: Callable[[str], KVStore] | None = None,
    ) -> None:
        if python_pool_size < 0 or js_hosts < 1 or tmp_mb < 1 or js_host_data_mb < 768:
            raise ValueError(
                "need python_pool_size >= 0, js_hosts >= 1, tmp_mb >= 1, js_host_data_mb >= 768"
            )
        self._tmp_bytes = tmp_mb << 20
        # One host serves one run at a time; more are started while all are busy, so a
        # tenant's long run never holds another tenant's (ADR 0102).
        self._js = JsHostPool(
            js_hosts, max(js_hosts, 4) if js_hosts_max is None else js_hosts_max,
            js_host_data_mb, self._tmp_bytes,
        )
        self._pool = WarmPool(python_pool_size, self._tmp_bytes)
        self._lock = threading.Lock()
        self._py_cache: LruCache[_PyWarm] = LruCache(get_cache_capacity, get_idle_seconds)
        self._js_cache: LruCache[_JsWarm] = LruCache(get_cache_capacity, get_idle_seconds)
        self._closed = False
        self._kv_for_tenant = kv_for_tenant or MemoryKV().for_tenant

    # -- public API -------------------------------------------------------------------

    def load(
        self,
        spec: WorkerSpec,
        input: Any,
        *,
        tenant: str,
        bindings: Bindings | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``spec`` once in a fresh sandbox (never sees state of an earlier run)."""
        return self._run("load", spec, input, tenant, bindings, limits)

    def get(
        self,
        spec: WorkerSpec,
        input: Any,
        *,
        tenant: str,
        bindings: Bindings | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``spec`` in the warm instance cached for ``(tenant, worker_id(spec))``.

        A Python instance's memory limit is fixed when it is created (later per-run
        overrides apply to time, CPU, output, logs and host calls only).
        """
        return self._run("get", spec, input, tenant, bindings, limits)

    def warm_up(self, timeout: float = 30.0) -> None:
        """Block until the Python pool is full and the JavaScript hosts are started."""
        self._pool.wait_full(timeout)
        if self._js_available():
            for host in self._js.hosts():
                with host.lock:
                    host.ensure()

    def close(self) -> None:
        """Kill every sandbox process. Runs in flight fail; later calls raise."""
        with self._lock:
            self._closed = True
            py = self._py_cache.clear()
            self._js_cache.clear()
        self._pool.close()
        for warm in py:
            warm.inst.kill()
        self._js.close()

    def __enter__(self) -> SandboxManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _run(
        self,
        mode: Mode,
        spec: WorkerSpec,
        input: Any,
        tenant: str,
        bindings: Bindings | None,
        limits: Limits | None,
    ) -> RunResult:
        t0 = time.perf_counter()
        if self._closed:
            raise TreadleError("the sandbox manager is closed")
        if not isinstance(spec, WorkerSpec):
            raise InvalidInput("spec must be a WorkerSpec")
        if not isinstance(tenant, str) or not tenant:
            raise InvalidInput("tenant must be a non-empty string")
        eff = limits or spec.limits
        input_json = _encode_input(input)
        binds = bindings or Bindings()
        kv = binds.kv if binds.kv is not None else self._kv_for_tenant(tenant)
        calls = HostCalls(spec, eff, binds, kv)
        wid = worker_id(spec)
        used = RunUsage()
        try:
            if spec.language == "javascript":
                output, logs, started, reused = self._run_js(
                    mode, spec, eff, input_json, calls, (tenant, wid), used
                )
            else:
                output, logs, started, reused = self._run_py(
                    mode, spec, eff, input_json, calls, (tenant, wid), used
                )
        except TreadleError as err:
            err.usage = used  # type: ignore[attr-defined]  # a failed run cost too
            raise
        t1 = time.perf_counter()
        return RunResult(
            output=output,
            logs=logs,
            duration_ms=(t1 - t0) * 1000,
            start_ms=((started or t1) - t0) * 1000,
            mode=mode,
            reused=reused,
            worker_id=wid,
            host_calls=calls.count,
            cpu_seconds=used.cpu_seconds,
            peak_memory_bytes=used.peak_memory_bytes,
        )

    def _run_py(
        self,
        mode: Mode,
        spec: WorkerSpec,
        limits: Limits,
        input_json: str,
        calls: HostCalls,
        key: tuple[str, str],
        used: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None, bool]:
        if mode == "load":
            inst, _ = self._pool.acquire()
            try:
                out, logs, started = inst.run(
                    spec, limits, input_json, calls, keep=False, tmp_bytes=self._tmp_bytes,
                    usage=used,
                )
            finally:
                inst.kill()
            return out, logs, started, False
        with self._lock:
            stale = self._py_cache.expire()
            warm = self._py_cache.get(key)
        for old in stale:
            old.inst.kill()
        if warm is not None and warm.lock.acquire(blocking=False):
            try:
                if warm.inst.reusable():
                    try:
                        out, logs, started = warm.inst.run(
                            spec, limits, input_json, calls, keep=True, tmp_bytes=self._tmp_bytes,
                            usage=used,
                        )
                        return out, logs, started, True
                    finally:
                        if warm.inst.dead:
                            with self._lock:
                                if self._py_cache.get(key) is warm:
                                    self._py_cache.pop(key)
            finally:
                warm.lock.release()
        # No usable warm instance (none cached, busy with another run, or dead): start one.
        inst, _ = self._pool.acquire()
        fresh = _PyWarm(inst)
        with fresh.lock:
            try:
                out, logs, started = inst.run(
                    spec, limits, input_json, calls, keep=True, tmp_bytes=self._tmp_bytes,
                    usage=used,
                )
            finally:
                evicted: list[_PyWarm] = []
                if not inst.dead:
                    with self._lock:
                        current = self._py_cache.get(key)
                        if current is None or current.inst.dead:
                            evicted = self._py_cache.put(key, fresh)
                        else:
                            evicted = [fresh]  # another thread cached one meanwhile
                for old in evicted:
                    if old is not fresh:
                        with old.lock:
                            old.inst.kill()
                    else:
                        old.inst.kill()
        return out, logs, started, False

    def _js_available(self) -> bool:
        try:
            mini_racer_dir()
        except TreadleError:
            return False
        return True

    def _run_js(
        self,
        mode: Mode,
        spec: WorkerSpec,
        limits: Limits,
        input_json: str,
        calls: HostCalls,
        key: tuple[str, str],
        used: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None, bool]:
        if mode == "load":
            _, host = self._js.acquire()
            try:
                out, logs, started, _ = host.run(spec, limits, input_json, calls, None, used)
            finally:
                host.lock.release()
            return out, logs, started, False
        # A get context lives in one host; the key string the host sees contains the
        # tenant, so tenants never share a context. When that host is busy the run goes
        # to another one (a fresh context there), and the old context is dropped.
        ctx_key = f"{key[0]}\x00{key[1]}"
        with self._lock:
            stale = self._js_cache.expire()
            cached = self._js_cache.get(key)
        self._drop_js(stale)
        index, host = self._js.acquire(cached.host if cached is not None else None)
        try:
            out, logs, started, reused = host.run(spec, limits, input_json, calls, ctx_key,
                                                 used)
        finally:
            alive = host.chan is not None
            gen = host.generation
            host.lock.release()
            with self._lock:
                current = self._js_cache.get(key)
                evicted: list[_JsWarm] = []
                if alive and (
                    current is None or (current.host, current.generation) != (index, gen)
                ):
                    evicted = self._js_cache.put(key, _JsWarm(index, gen, ctx_key))
            self._drop_js([e for e in evicted if (e.host, e.generation) != (index, gen)])
        return out, logs, started, reused

    def _drop_js(self, entries: list[_JsWarm]) -> None:
        for entry in entries:
            self._js.get(entry.host).drop_later(entry.ctx_key, entry.generation)
