"""``app.dynamic_workers``: register dynamic workers, run them as durable jobs of kind ``code``."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from treadle.app import JobHandle, check_payload
from treadle.core.errors import InvalidInput
from treadle.core.job import DEFAULT_QUEUE, DEFAULT_TENANT, JobKind, NewJob, validate_name
from treadle.dynamic.executor import CodeExecutor, RunRequest, WorkerNotFound
from treadle.dynamic.repo import DynamicRepo, DynamicWorker
from treadle.sandbox import Language, Limits, Mode, WorkerSpec, worker_id

if TYPE_CHECKING:
    from treadle.app import Treadle

TASK_PREFIX = "dynamic:"
# Added to a run's sandbox wall-time limit to get the job's timeout: waiting for a sandbox
# (a busy JavaScript host, a Python pool refill) counts against the job, and the sandbox's
# own kill must always come first; the worker's hard stop is only the backstop.
SANDBOX_SLACK_SECONDS = 60.0

_LANGUAGE_ALIASES: dict[str, Language] = {
    "javascript": "javascript", "js": "javascript", "python": "python", "py": "python",
}

LimitsArg = Limits | Mapping[str, Any] | None


def as_language(value: str) -> Language:
    """``javascript``/``js`` or ``python``/``py``, case-insensitive."""
    lang = _LANGUAGE_ALIASES.get(str(value).strip().lower())
    if lang is None:
        raise InvalidInput(f"language must be 'javascript' or 'python', got {value!r}")
    return lang


def as_limits(value: LimitsArg, base: Limits | None = None) -> Limits:
    if value is None:
        return base or Limits()
    if isinstance(value, Limits):
        return value
    return Limits.from_dict(dict(value), base=base)


class WorkerRegistry:
    """Dynamic workers of one app: ``app.dynamic_workers`` after
    ``app.use(DynamicWorkers())``.

    Registering stores code + language + limits + bindings under a content-derived id
    (same code and configuration, same id). Running one enqueues a job of kind ``code``
    that any worker process with the code executor claims, leases, retries and records
    like every other job; the job's task name is ``dynamic:<worker id>``.
    """

    def __init__(
        self,
        app: Treadle,
        repo: DynamicRepo,
        executor: CodeExecutor,
        *,
        queue: str = DEFAULT_QUEUE,
        retries: int = 2,
    ) -> None:
        self.app = app
        self.repo = repo
        self.executor = executor
        self.queue = validate_name("queue", queue)
        self.retries = retries

    def __repr__(self) -> str:
        return f"<WorkerRegistry {self.app.url!r}>"

    # -- registering ------------------------------------------------------------

    def register(
        self,
        code: str,
        language: str,
        limits: LimitsArg = None,
        name: str | None = None,
        tenant: str = DEFAULT_TENANT,
        allow_wasm: bool = False,
        fetch_allow: Iterable[str] = (),
        kv: bool = False,
    ) -> DynamicWorker:
        """Store a worker and return it. Idempotent: the same code and configuration
        give the same id and row (a new ``name`` relabels it)."""
        unsaved = self.unsaved(code, language, limits, name=name, tenant=tenant,
                               allow_wasm=allow_wasm, fetch_allow=fetch_allow, kv=kv)
        return self.repo.upsert_worker(unsaved.id, tenant, unsaved.spec, name)

    def unsaved(
        self,
        code: str,
        language: str,
        limits: LimitsArg = None,
        name: str | None = None,
        tenant: str = DEFAULT_TENANT,
        allow_wasm: bool = False,
        fetch_allow: Iterable[str] = (),
        kv: bool = False,
    ) -> DynamicWorker:
        """The worker ``register`` would store, checked, without storing it: a caller can
        check a run of it (``new_job(..., unsaved=)``) before writing anything."""
        validate_name("tenant", tenant)
        if name is not None:
            validate_name("name", name)
        if isinstance(fetch_allow, str):
            raise InvalidInput("fetch_allow must be a list of host names or URL prefixes")
        spec = WorkerSpec(
            code=code, language=as_language(language), limits=as_limits(limits),
            allow_wasm=bool(allow_wasm), fetch_allow=tuple(fetch_allow), kv=bool(kv),
        )
        return DynamicWorker(worker_id(spec), tenant, spec, name)

    def get(self, worker_id: str, *, tenant: str = DEFAULT_TENANT) -> DynamicWorker:
        """The worker, or :class:`WorkerNotFound` (another tenant's worker is not found)."""
        found = self.repo.get_worker(tenant, worker_id)
        if found is None:
            raise WorkerNotFound(
                f"no dynamic worker {worker_id!r} for tenant {tenant!r}",
                detail={"worker_id": worker_id, "tenant": tenant},
            )
        return found

    # -- running ----------------------------------------------------------------

    def new_job(
        self,
        worker_id: str,
        input: Any = None,
        *,
        mode: Mode = "load",
        tenant: str = DEFAULT_TENANT,
        limits: Mapping[str, Any] | None = None,
        queue: str | None = None,
        retries: int | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        unsaved: DynamicWorker | None = None,
    ) -> NewJob:
        """The job a run would enqueue (checked: worker exists, limits and input valid).
        ``unsaved``: the worker, from :meth:`unsaved`, when it is not stored yet."""
        worker = unsaved if unsaved is not None else self.get(worker_id, tenant=tenant)
        overrides = dict(limits) if limits else None
        effective = as_limits(overrides, base=worker.limits)  # InvalidLimits now, not later
        if mode not in ("load", "get"):
            raise InvalidInput(f"mode must be 'load' or 'get', got {mode!r}")
        request = RunRequest(worker.id, input, mode, overrides)
        n_retries = self.retries if retries is None else retries
        if isinstance(n_retries, bool) or not isinstance(n_retries, int) or n_retries < 0:
            raise InvalidInput("retries must be a non-negative integer")
        return NewJob(
            task=TASK_PREFIX + worker.id,
            payload=check_payload(request.to_payload()),
            queue=queue or self.queue,
            kind=JobKind.CODE,
            priority=priority,
            max_attempts=n_retries + 1,
            timeout=effective.timeout + SANDBOX_SLACK_SECONDS,
            idempotency_key=idempotency_key,
            tenant=tenant,
            callback_url=callback_url,
        )

    def run(
        self,
        worker_id: str,
        input: Any = None,
        mode: Mode = "load",
        *,
        tenant: str = DEFAULT_TENANT,
        wait: float | None = None,
        limits: Mapping[str, Any] | None = None,
        queue: str | None = None,
        retries: int | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> JobHandle:
        """Enqueue one run of a registered worker as a job of kind ``code``.

        ``wait``: block up to that many seconds for the job to finish (a sync window);
        the handle's ``job`` is then the latest state, finished or not. Nothing is
        raised when the window passes: check ``handle.job.is_finished``.
        """
        job = self.new_job(
            worker_id, input, mode=mode, tenant=tenant, limits=limits, queue=queue,
            retries=retries, priority=priority, idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
        handle = self.app.enqueue([job])[0]
        if wait is not None:
            self.wait(handle, wait)
        return handle

    def run_inline(
        self,
        code: str,
        language: str,
        input: Any = None,
        limits: LimitsArg = None,
        *,
        tenant: str = DEFAULT_TENANT,
        wait: float | None = None,
        **run_options: Any,
    ) -> JobHandle:
        """A one-off ``load`` of inline code (``POST /v1/run`` with code).

        The code is registered first (content-addressed, so repeating the same snippet
        stores it once) so that the run, like every run, is a job naming a stored worker.
        """
        worker = self.register(code, language, limits, tenant=tenant)
        return self.run(worker.id, input, "load", tenant=tenant, wait=wait, **run_options)

    def wait(self, handle: JobHandle, timeout: float) -> JobHandle:
        """Wait up to ``timeout`` seconds; refresh ``handle.job`` (finished or not)."""
        if timeout > 0:
            self.app.store.wait_for_finish([handle.id], timeout)
        handle.job = self.app.get_job(handle.id)
        return handle

    def close(self) -> None:
        """Stop the sandboxes this registry's executor started (if any)."""
        self.executor.close()

    # Last, so the annotations above still mean the builtin ``list``.
    def list(self, tenant: str = DEFAULT_TENANT, *, limit: int = 100) -> builtins.list[
        DynamicWorker
    ]:
        """The tenant's workers, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an integer between 1 and 1000")
        return self.repo.list_workers(tenant, limit)
