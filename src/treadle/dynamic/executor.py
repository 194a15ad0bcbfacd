"""Runs jobs of kind ``code``: one run of a stored dynamic worker in a sandbox.

The payload names the worker (``worker_id``), its ``input``, the ``mode`` (``load`` = a
fresh sandbox, ``get`` = the warm instance of ``(tenant, worker_id)``) and optional per-run
``limits`` overrides. The worker row is read from the store (through a small cache: a row
is content-addressed, so it never changes meaning), the sandbox runs it in the worker
thread, console output becomes the attempt's log, the handler's return value the result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from treadle.context import JobContext
from treadle.core.errors import ErrorClass, InvalidInput, Transient, TreadleError
from treadle.core.job import Job
from treadle.core.retry import RetryPolicy
from treadle.dynamic.repo import DynamicRepo, DynamicWorker, StoreKV
from treadle.egress import EgressPolicy
from treadle.executors.base import Runnable
from treadle.logs import get_logger
from treadle.sandbox import Bindings, Limits, Mode, RunResult, SandboxManager
from treadle.sandbox.bindings import HostCallError
from treadle.sandbox.spec import RunUsage

log = get_logger("treadle.dynamic")

MODES: tuple[Mode, ...] = ("load", "get")

# A dynamic run is retried only for failures that are not its own doing: transient
# infrastructure errors (a store blip under env.kv) and lost leases (handled by the
# reaper). Its limits are the budget its owner declared, so a run that hit one (timeout,
# resource_exhausted) would hit it again; those, like violations, bad code and the
# code's own exceptions, are final. See ADR 0401.
CODE_RETRY_POLICY = RetryPolicy(
    never_retry=frozenset({ErrorClass.TIMEOUT, ErrorClass.RESOURCE_EXHAUSTED})
)

_CACHE_SIZE = 512


class WorkerNotFound(TreadleError, LookupError):
    """No dynamic worker with that id is registered for this tenant."""

    error_class = ErrorClass.INVALID_INPUT


@dataclass(frozen=True)
class RunRequest:
    """The payload of a ``code`` job, checked before anything runs."""

    worker_id: str
    input: Any
    mode: Mode
    limits: dict[str, Any] | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RunRequest:
        wid = payload.get("worker_id")
        if not isinstance(wid, str) or not wid:
            raise InvalidInput("a code job needs a string 'worker_id' in its payload")
        mode = payload.get("mode", "load")
        if mode not in MODES:
            raise InvalidInput(f"mode must be 'load' or 'get', got {mode!r}")
        limits = payload.get("limits")
        if limits is not None and not isinstance(limits, dict):
            raise InvalidInput("'limits' must be a JSON object of limit overrides")
        unknown = sorted(set(payload) - {"worker_id", "input", "mode", "limits"})
        if unknown:
            raise InvalidInput(f"unknown field(s) in code job payload: {', '.join(unknown)}")
        return cls(wid, payload.get("input"), mode, limits)

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {"worker_id": self.worker_id, "input": self.input,
                                "mode": self.mode}
        if self.limits:
            data["limits"] = self.limits
        return data


class _RunKV:
    """The tenant's KV for one run, remembering a store failure behind a host call.

    The sandbox only understands ``HostCallError`` from a binding (anything else would
    leave the sandbox waiting for a reply); the code sees a refused call, and the job is
    then failed as transient, not blamed on the code, so it is retried.
    """

    def __init__(self, inner: StoreKV) -> None:
        self.inner = inner
        self.failure: Exception | None = None

    def _guard(self, fn: Callable[..., Any], *args: str) -> Any:
        try:
            return fn(*args)
        except InvalidInput as exc:  # the code's own mistake (e.g. a lone surrogate key)
            raise HostCallError(exc.message) from None
        except Exception as exc:
            self.failure = exc
            raise HostCallError("env.kv is temporarily unavailable") from None

    def get(self, key: str) -> str | None:
        value: str | None = self._guard(self.inner.get, key)
        return value

    def put(self, key: str, value: str) -> None:
        self._guard(self.inner.put, key, value)

    def delete(self, key: str) -> None:
        self._guard(self.inner.delete, key)


class CodeExecutor:
    """The executor for :attr:`JobKind.CODE`; safe to share between worker threads.

    ``manager`` is used as given (and not closed here); without one, a
    :class:`SandboxManager` is started on the first run (sandbox processes are only
    spawned by processes that actually run code) and closed by :meth:`close`.
    """

    def __init__(
        self,
        repo: DynamicRepo,
        manager: SandboxManager | None = None,
        *,
        egress: Callable[[], EgressPolicy] = EgressPolicy,
    ) -> None:
        self.repo = repo
        # Looked up per run: the CLI sets the app's policy after the app module (which
        # may enable dynamic workers at import) was loaded.
        self.egress = egress
        self._manager = manager
        self._owns_manager = manager is None
        self._lock = threading.Lock()
        self._workers: OrderedDict[tuple[str, str], DynamicWorker] = OrderedDict()

    @property
    def manager(self) -> SandboxManager:
        with self._lock:
            if self._manager is None:
                self._manager = SandboxManager()
            return self._manager

    def close(self) -> None:
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None and self._owns_manager:
            manager.close()

    def prepare(self, job: Job) -> Runnable:
        request = RunRequest.from_payload(job.payload)

        def call(ctx: JobContext) -> Any:
            return self._execute(job, request, ctx)

        return Runnable(call=call, retry_policy=CODE_RETRY_POLICY)

    def worker(self, tenant: str, worker_id: str) -> DynamicWorker:
        """The stored worker (cached: the id is a hash of its content)."""
        key = (tenant, worker_id)
        with self._lock:
            found = self._workers.get(key)
            if found is not None:
                self._workers.move_to_end(key)
                return found
        found = self.repo.get_worker(tenant, worker_id)
        if found is None:
            raise WorkerNotFound(
                f"no dynamic worker {worker_id!r} for tenant {tenant!r}",
                detail={"worker_id": worker_id, "tenant": tenant},
            )
        with self._lock:
            self._workers[key] = found
            while len(self._workers) > _CACHE_SIZE:
                self._workers.popitem(last=False)
        return found

    def _execute(self, job: Job, request: RunRequest, ctx: JobContext) -> Any:
        ctx.check()
        worker = self.worker(job.tenant, request.worker_id)
        limits = (
            Limits.from_dict(request.limits, base=worker.limits) if request.limits else None
        )
        kv = _RunKV(self.repo.kv_for_tenant(job.tenant)) if worker.spec.kv else None
        run = self.manager.get if request.mode == "get" else self.manager.load
        try:
            result: RunResult = run(
                worker.spec, request.input, tenant=job.tenant,
                bindings=Bindings(kv=kv, egress=self.egress(), emit=ctx.emit),
                limits=limits,
            )
        except TreadleError as exc:
            # Console output written before a failure, when the engine hands it over.
            for line in getattr(exc, "logs", None) or ():
                ctx.log(str(line))
            used = getattr(exc, "usage", None)
            if isinstance(used, RunUsage):  # a failed run's sandbox cost counts too
                ctx.record_usage(cpu_seconds=used.cpu_seconds,
                                 peak_memory_bytes=used.peak_memory_bytes)
            _raise_kv_failure(kv, exc)
            raise
        # A run that succeeded keeps its result even if a kv call failed: the code saw the
        # refused call and decided; retrying could repeat its side effects.
        for line in result.logs:
            ctx.log(line)
        # The sandbox's CPU and peak memory are this attempt's usage (ADR 0022).
        ctx.record_usage(cpu_seconds=result.cpu_seconds,
                         peak_memory_bytes=result.peak_memory_bytes)
        log.debug("dynamic run finished", job_id=job.id, worker_id=worker.id,
                  mode=result.mode, reused=result.reused, duration_ms=round(result.duration_ms, 2),
                  host_calls=result.host_calls)
        return result.output


def _raise_kv_failure(kv: _RunKV | None, cause: BaseException) -> None:
    if kv is not None and kv.failure is not None:
        raise Transient(
            f"env.kv failed during the run: {kv.failure}", detail={"cause": repr(kv.failure)}
        ) from cause
