"""The library entry point: ``Treadle``, tasks and job handles (docs/glossary.md: task, job)."""

from __future__ import annotations

import asyncio
import inspect
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from treadle.artifacts.gc import artifact_services
from treadle.artifacts.records import SQL_PACKAGE as ARTIFACTS_SQL
from treadle.artifacts.records import TRACK as ARTIFACTS_TRACK
from treadle.core import storable
from treadle.core.classify import Overrides
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.cron import CronSchedule
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    InvalidInput,
    Timeout,
    UnknownTask,
)
from treadle.core.explain import explain
from treadle.core.job import (
    DEFAULT_MAX_CRASHES,
    DEFAULT_QUEUE,
    DEFAULT_TENANT,
    Job,
    JobEvent,
    JobFilter,
    JobKind,
    JobLog,
    NewJob,
    check_max_crashes,
)
from treadle.core.keys import check_key_format, check_key_limit, check_rate_limit, job_key
from treadle.core.retry import DEFAULT_POLICY, RetryPolicy
from treadle.egress import EgressError, EgressPolicy
from treadle.executors.base import Executor
from treadle.executors.task import TaskExecutor
from treadle.kinds import JobKindPlugin, builtin_plugins
from treadle.observe import Observer
from treadle.store import Store, open_store
from treadle.store.groupcommit import Guard
from treadle.streams.repo import SQL_PACKAGE as STREAMS_SQL
from treadle.streams.repo import TRACK as STREAMS_TRACK
from treadle.tracing import NULL_TRACING, Tracing
from treadle.worker.scheduler import Periodic

if TYPE_CHECKING:
    from treadle.agents.agent import Agent
    from treadle.artifacts import Artifact, ArtifactService, ArtifactStore
    from treadle.dynamic.registry import WorkerRegistry
    from treadle.streams.follow import JobStream
    from treadle.workflows import Step, Workflow
    from treadle.workflows.service import WorkflowService

KeySpec = str | Callable[[dict[str, Any]], str]

P = ParamSpec("P")
R = TypeVar("R")
PluginT = TypeVar("PluginT", bound=JobKindPlugin)

DEFAULT_URL = "sqlite:///treadle.db"


class WaitTimeout(Timeout, TimeoutError):
    """``JobHandle.wait`` ran out of time before the job finished."""


@dataclass(frozen=True)
class TaskOptions:
    queue: str = DEFAULT_QUEUE
    retries: int = 3
    timeout: float | None = 30.0
    priority: int = 0
    retry_policy: RetryPolicy = DEFAULT_POLICY
    error_overrides: Overrides | None = None
    default_error_class: ErrorClass = ErrorClass.TRANSIENT
    pass_context: bool = False
    # (key, limit): the key a format string over the payload or a callable taking it.
    concurrency: tuple[KeySpec, int] | None = None
    # (key, starts, per seconds): at most that many starts per key in any such window.
    rate_limit: tuple[KeySpec, int, float] | None = None
    # Quarantine a job after this many attempts whose worker died under it (ADR 0015).
    max_crashes: int = DEFAULT_MAX_CRASHES

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError("retries must be a non-negative integer")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigurationError("timeout must be positive (seconds) or None")
        check_max_crashes(self.max_crashes, ConfigurationError)
        if self.concurrency is not None:
            check_key_limit(self.concurrency, "concurrency")
        if self.rate_limit is not None:
            check_rate_limit(self.rate_limit)


class JobHandle:
    """A reference to an enqueued job."""

    def __init__(self, app: Treadle, job: Job, created: bool = True) -> None:
        self.app = app
        self.id = job.id
        self.job = job
        self.created = created

    def __repr__(self) -> str:
        return f"<JobHandle id={self.id} task={self.job.task!r}>"

    def stream(self, *, after: int = 0, poll: float = 0.05) -> JobStream:
        """The job's live stream: iterate (or ``async for``) its state changes, items
        (logs, progress, emitted data) and final record; ``after`` resumes (docs/streams.md)."""
        from treadle.streams.follow import JobStream

        return JobStream(self.app, self.id, after=after, poll=poll)

    def refresh(self) -> Job:
        return self.app.get_job(self.id)

    def wait(self, timeout: float = 30.0) -> Job:
        """Block until the job is finished (succeeded, failed or cancelled); return it."""
        self.app.store.wait_for_finish([self.id], timeout)
        job = self.app.get_job(self.id)
        if not job.is_finished:
            raise WaitTimeout(
                f"job {self.id} not finished after {timeout}s (status {job.status.value})",
                detail={"id": self.id, "status": job.status.value},
            )
        return job


class Task(Generic[P, R]):
    """A registered function; call it to run inline, ``defer`` to enqueue a job."""

    def __init__(
        self, app: Treadle, fn: Callable[P, R], name: str, options: TaskOptions
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} queue={self.options.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def new_job(
        self,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        tenant: str = DEFAULT_TENANT,
        callback_url: str | None = None,
    ) -> NewJob:
        if delay is not None:
            if run_at is not None:
                raise InvalidInput("give either run_at or delay, not both")
            run_at = self.app.clock.now() + timedelta(seconds=delay)
        return NewJob(
            task=self.name,
            payload=self.check_arguments(check_payload(payload)),
            queue=queue or self.options.queue,
            priority=self.options.priority if priority is None else priority,
            run_at=run_at,
            max_attempts=self.options.retries + 1,
            timeout=self.options.timeout,
            idempotency_key=idempotency_key,
            tenant=tenant,
            callback_url=callback_url,
            max_crashes=self.options.max_crashes,
            **self._concurrency(payload),
        )

    def _concurrency(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The per-key limits' keys for this payload, computed once at submit and stored.

        A concurrency limit goes in concurrency_key/limit; a rate limit alone there too
        (with rate_period), beside a concurrency limit in rate_key/limit/window (ADR 0010)."""
        out: dict[str, Any] = {}
        if self.options.concurrency is not None:
            spec, limit = self.options.concurrency
            out = {"concurrency_key": job_key(self.name, spec, payload),
                   "concurrency_limit": limit}
        if self.options.rate_limit is not None:
            spec, starts, per = self.options.rate_limit
            key = job_key(self.name, spec, payload)
            if out:
                out |= {"rate_key": key, "rate_limit": starts, "rate_window": float(per)}
            else:
                out = {"concurrency_key": key, "concurrency_limit": starts,
                       "rate_period": float(per)}
        return out

    def check_arguments(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Refuse, before anything is stored, a payload the function cannot be called with.

        Workers check again at run time (a producer may run other code than the worker).
        """
        probe = {**payload, "ctx": None} if self.options.pass_context else payload
        try:
            self._signature.bind(**probe)
        except TypeError as exc:
            raise InvalidInput(
                f"payload does not match task {self.name!r}: {exc}",
                detail={"task": self.name, "payload_keys": sorted(payload)},
            ) from None
        return payload

    def defer(self, **kwargs: Any) -> JobHandle:
        """Enqueue one job with ``kwargs`` as its payload."""
        return self.app.enqueue([self.new_job(kwargs)])[0]

    def defer_many(self, payloads: Iterable[Mapping[str, Any]]) -> list[JobHandle]:
        """Enqueue many jobs in one transaction (one round trip)."""
        return self.app.enqueue([self.new_job(p) for p in payloads])

    def configure(self, **options: Any) -> _Configured:
        """``task.configure(idempotency_key="k", delay=5).defer(x=1)``."""
        return _Configured(self, options)


class _Configured:
    def __init__(self, task: Task[Any, Any], options: dict[str, Any]) -> None:
        self._task = task
        self._options = options

    def defer(self, **kwargs: Any) -> JobHandle:
        return self._task.app.enqueue([self._task.new_job(kwargs, **self._options)])[0]


class Treadle:
    """The application: a store plus a registry of tasks.

    ``Treadle("sqlite:///treadle.db")`` (the embedded default) or
    ``Treadle("postgresql://user@host/db")``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: Store | None = None,
        egress: EgressPolicy | None = None,
        artifacts: str | ArtifactStore | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.url = url
        # Spans of submissions and of this app's workers (ADR 0021): a no-op unless given
        # (``treadle.tracing.otel_tracing()``, or the CLI's --otel).
        self.tracing: Tracing = tracing or NULL_TRACING
        self.clock = clock
        # Where env.fetch and callbacks may connect: public addresses unless an operator
        # allowed private ranges (the CLI reads TREADLE_EGRESS_ALLOW; ADR 0305).
        self.egress = egress or EgressPolicy()
        self.store: Store = store if store is not None else open_store(url, clock=clock)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.periodics: list[Periodic] = []
        self.crons: list[CronSchedule] = []
        self.observer: Observer | None = None  # metrics, set by the API server or CLI
        self._plugins: dict[JobKind, JobKindPlugin] = {}
        self._legacy_executors: dict[JobKind, Executor] = {}
        self._task_executor: TaskExecutor | None = None
        self._on_close: list[Callable[[], None]] = []
        # Artifacts (ADR 0009): built on first use; None -> a directory beside SQLite.
        self._artifacts_source = artifacts
        self._artifacts: ArtifactService | None = None
        self._artifacts_lock = threading.Lock()
        # How often each worker collects unreferenced artifact objects (ADR 0016).
        self.artifacts_gc_interval = 60.0

    def __repr__(self) -> str:
        return f"<Treadle {self.url!r} tasks={sorted(self.tasks)}>"

    # -- registration ----------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 3,
        timeout: float | None = 30.0,
        priority: int = 0,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        error_overrides: Overrides | None = None,
        default_error_class: ErrorClass = ErrorClass.TRANSIENT,
        pass_context: bool = False,
        concurrency: tuple[KeySpec, int] | None = None,
        rate_limit: tuple[KeySpec, int, float] | None = None,
        max_crashes: int = DEFAULT_MAX_CRASHES,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy cannot match a ParamSpec-free overload
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 3,
        timeout: float | None = 30.0,
        priority: int = 0,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        error_overrides: Overrides | None = None,
        default_error_class: ErrorClass = ErrorClass.TRANSIENT,
        pass_context: bool = False,
        concurrency: tuple[KeySpec, int] | None = None,
        rate_limit: tuple[KeySpec, int, float] | None = None,
        max_crashes: int = DEFAULT_MAX_CRASHES,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task (usable bare or with options)."""
        options = TaskOptions(
            queue=queue, retries=retries, timeout=timeout, priority=priority,
            retry_policy=retry_policy, error_overrides=error_overrides,
            default_error_class=default_error_class, pass_context=pass_context,
            concurrency=concurrency, rate_limit=rate_limit, max_crashes=max_crashes,
        )

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{f.__module__}.{f.__qualname__}"
            for spec in (options.concurrency, options.rate_limit):
                if spec is not None and not callable(spec[0]):
                    check_key_format(task_name, spec[0])
            if task_name in self.tasks:
                raise ConfigurationError(f"a task named {task_name!r} is already registered")
            t = Task(self, f, task_name, options)
            self.tasks[task_name] = t
            return t

        return register(fn) if fn is not None else register

    def periodic(
        self, *, every: float, payload: Mapping[str, Any] | None = None, **task_options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a task that the scheduler enqueues every ``every`` seconds."""

        def register(f: Callable[P, R]) -> Task[P, R]:
            t: Task[P, R] = self.task(**task_options)(f)
            self.periodics.append(Periodic(t.name, every, dict(payload or {})))
            return t

        return register

    def workflow(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        retries: int = 3,
        timeout: float | None = 60.0,
        priority: int = 0,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        error_overrides: Overrides | None = None,
        default_error_class: ErrorClass = ErrorClass.TRANSIENT,
    ) -> Callable[[Callable[..., Any]], Workflow]:
        """Register ``fn(ctx, **payload)`` as a durable workflow (docs/workflows.md).

        ``timeout`` bounds one attempt (one replay up to the next wait), not the workflow."""
        from treadle.workflows.workflow import register

        options = TaskOptions(
            queue=queue, retries=retries, timeout=timeout, priority=priority,
            retry_policy=retry_policy, error_overrides=error_overrides,
            default_error_class=default_error_class,
        )

        def wrap(fn: Callable[..., Any]) -> Workflow:
            from treadle.workflows.plugin import Workflows

            wf = register(self, fn, name=name, options=options)
            if self.find_plugin(Workflows) is None:  # serve the kind: "one package plus a line"
                self.use(Workflows())
            return wf

        return wrap

    def agent(self, *, name: str, model: Any, **options: Any) -> Agent:
        """Register a durable LLM agent; its runs are jobs of kind ``agent``
        (docs/agents.md). ``agent.defer(input=...)`` starts one."""
        from treadle.agents.agent import register as register_agent

        return register_agent(self, name=name, model=model, **options)

    @property
    def workflows(self) -> WorkflowService:
        """The workflow plug-in's service (registers ``Workflows`` on first use)."""
        from treadle.workflows.plugin import Workflows

        plugin = self.find_plugin(Workflows)
        if plugin is None:
            plugin = self.use(Workflows())
        return plugin.service

    def send_event(self, key: str, payload: Any = None, *, tenant: str = DEFAULT_TENANT) -> int:
        """Store an event and wake the workflows waiting for ``key``; returns its id."""
        return self.workflows.send_event(key, payload, tenant=tenant)[0]

    def job_steps(self, job_id: int) -> list[Step]:
        """A workflow job's steps, in order."""
        return self.workflows.steps(job_id)

    def cron(
        self,
        expr: str,
        *,
        tz: str = "UTC",
        overlap: str = "skip",
        catch_up: str = "latest",
        window: float = 3600.0,
        payload: Mapping[str, Any] | None = None,
        **task_options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a task the scheduler enqueues at each fire time of ``expr`` (five cron
        fields, or six with seconds first) in time zone ``tz`` (ADR 0010)."""

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = task_options.get("name") or f"{f.__module__}.{f.__qualname__}"
            # Validated before the task exists: a bad schedule registers nothing.
            schedule = CronSchedule.build(task_name, expr, tz=tz, overlap=overlap,
                                          catch_up=catch_up, window=window, payload=payload)
            t: Task[P, R] = self.task(**task_options)(f)
            self.crons.append(schedule)
            return t

        return register

    def schedules(self, *, upcoming: int = 3) -> list[dict[str, Any]]:
        """Every cron schedule with its stored state and next fire times (CLI, API, UI)."""
        states = self.store.schedule_states()
        now = self.clock.now()
        out = []
        for c in self.crons:
            st = states.get(c.name)
            paused = bool(st and st.paused)
            out.append({
                "name": c.name, "task": c.task, "expr": c.expr, "tz": c.tz,
                "overlap": c.overlap.value, "catch_up": c.catch_up.value, "paused": paused,
                "last_fire": st.last_fire.isoformat() if st and st.last_fire else None,
                "next_fires": [] if paused else [
                    t.isoformat() for t in c.next_fires(now, upcoming)],
            })
        return out

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        if name not in {c.name for c in self.crons}:
            known = ", ".join(sorted(c.name for c in self.crons)) or "none"
            raise UnknownTask(f"no cron schedule named {name!r} (registered: {known})",
                              detail={"schedule": name})
        self.store.set_schedule_paused(name, paused)

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTask(
                f"unknown task {name!r} (registered: {known})", detail={"task": name}
            ) from None

    # -- job kinds (plug-ins) -----------------------------------------------------

    def use(self, plugin: PluginT) -> PluginT:
        """Register a job-kind plug-in (see :mod:`treadle.kinds`); returns it.

        Idempotent for the same object; another plug-in for a kind (or a name) already
        served is refused, as is anything that is not a valid :class:`JobKindPlugin`.
        """
        if not isinstance(plugin, JobKindPlugin):
            raise ConfigurationError(
                f"app.use() takes a treadle.kinds.JobKindPlugin, got {type(plugin).__name__}"
            )
        try:
            type(plugin).check_declaration()
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        existing = self._plugins.get(plugin.kind)
        if existing is plugin:
            return plugin
        if existing is not None:
            raise ConfigurationError(
                f"jobs of kind {plugin.kind.value!r} are already served by {existing!r}"
            )
        if any(p.name == plugin.name for p in self._plugins.values()):
            raise ConfigurationError(f"a plug-in named {plugin.name!r} is already registered")
        if plugin.kind in self._legacy_executors:
            raise ConfigurationError(
                f"kind {plugin.kind.value!r} already has an executor in app.extra_executors"
            )
        plugin.setup(self)
        self._plugins[plugin.kind] = plugin
        self.on_close(plugin.close)
        return plugin

    @property
    def plugins(self) -> tuple[JobKindPlugin, ...]:
        """The registered plug-ins, in registration order."""
        return tuple(self._plugins.values())

    def plugin_for(self, kind: JobKind) -> JobKindPlugin | None:
        return self._plugins.get(kind)

    def plugin(self, cls: type[PluginT]) -> PluginT:
        """The registered plug-in of class ``cls`` (typed), or ConfigurationError."""
        found = self.find_plugin(cls)
        if found is None:
            raise ConfigurationError(
                f"{cls.__name__} is not registered on this app: call app.use({cls.__name__}())"
            )
        return found

    def find_plugin(self, cls: type[PluginT]) -> PluginT | None:
        for p in self._plugins.values():
            if isinstance(p, cls):
                return p
        return None

    def worker_options(self) -> dict[str, Any]:
        """What the plug-ins add to a :class:`~treadle.worker.Worker` of this app: finish
        listeners (``on_finished``) and periodic ``services`` (keyword arguments)."""
        plugins = list(self._plugins.values())
        return {
            "on_finished": [p.on_finished for p in plugins],
            "services": [*(s for p in plugins for s in p.services(self)),
                         *artifact_services(self)],
            "tracing": self.tracing,
        }

    def worker_hooks(self) -> dict[str, Any]:
        """Deprecated name of :meth:`worker_options` ("hook" is an inbound webhook)."""
        warnings.warn("app.worker_hooks() is deprecated; use app.worker_options()",
                      DeprecationWarning, stacklevel=2)
        return self.worker_options()

    def executors(self) -> dict[JobKind, Executor]:
        """One executor per kind this app can run: ``task`` plus every plug-in's.

        A worker built from them claims only these kinds."""
        if self._task_executor is None:
            self._task_executor = TaskExecutor(self)
        out: dict[JobKind, Executor] = {JobKind.TASK: self._task_executor}
        out.update(self._legacy_executors)
        for kind, plugin in self._plugins.items():
            out[kind] = plugin.executor(self)
        return out

    @property
    def extra_executors(self) -> dict[JobKind, Executor]:
        """Deprecated: the plug-ins' executors (use :meth:`executors` or :meth:`use`)."""
        return {k: e for k, e in self.executors().items() if k is not JobKind.TASK}

    @extra_executors.setter
    def extra_executors(self, value: dict[JobKind, Executor]) -> None:
        # Deprecated path for executors without a plug-in; kept for code written before
        # app.use() existed. Such kinds get no SQL, routes, pages or commands.
        self._legacy_executors = {k: v for k, v in value.items() if k not in self._plugins}

    @property
    def dynamic_workers(self) -> WorkerRegistry:
        """The dynamic-worker registry: register stored code, run it as ``code`` jobs.

        ConfigurationError unless the app uses ``DynamicWorkers`` (``app.use(...)``)."""
        from treadle.dynamic.plugin import DynamicWorkers

        return self.plugin(DynamicWorkers).registry

    @property
    def workers(self) -> WorkerRegistry | None:
        """Deprecated name of :attr:`dynamic_workers` (None when not registered): a
        "worker" is the process that runs jobs (ADR 0023)."""
        from treadle.dynamic.plugin import DynamicWorkers

        warnings.warn("app.workers is deprecated; use app.dynamic_workers",
                      DeprecationWarning, stacklevel=2)
        found = self.find_plugin(DynamicWorkers)
        return found.registry if found is not None else None

    # -- producing -------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], *, guard: Guard | None = None) -> list[JobHandle]:
        """Enqueue ``jobs`` in one transaction; returns once they are durable.

        Concurrent callers (threads) share one commit (group commit, ADR 0019); ``guard``
        runs in that transaction first and may refuse this submission alone."""
        self._check_callbacks(jobs)
        if not self.tracing.enabled:
            return [JobHandle(self, e.job, e.created)
                    for e in self.store.enqueue(jobs, guard=guard)]
        with self.tracing.submit(jobs) as traced:  # jobs join the current trace (ADR 0021)
            return [JobHandle(self, e.job, e.created)
                    for e in self.store.enqueue(traced, guard=guard)]

    async def enqueue_async(
        self, jobs: Sequence[NewJob], *, guard: Guard | None = None
    ) -> list[JobHandle]:
        """:meth:`enqueue` for an asyncio event loop: awaits the group commit without
        holding a thread. Cancelling it before its batch is written withdraws the jobs."""
        self._check_callbacks(jobs)
        if not self.tracing.enabled:
            done = await asyncio.wrap_future(self.store.submit(jobs, guard=guard))
            return [JobHandle(self, e.job, e.created) for e in done]
        with self.tracing.submit(jobs) as traced:  # jobs join the current trace (ADR 0021)
            done = await asyncio.wrap_future(self.store.submit(traced, guard=guard))
            return [JobHandle(self, e.job, e.created) for e in done]

    def _check_callbacks(self, jobs: Sequence[NewJob]) -> None:
        for nj in jobs:
            if nj.callback_url is not None:
                self.check_callback_url(nj.callback_url)

    def check_callback_url(self, url: str) -> None:
        """Refuse, before anything is stored, a callback URL the egress policy can never
        deliver to (bad scheme, credentials, a loopback/private literal address, a
        ``localhost`` name). Delivery resolves and checks the address again."""
        try:
            self.egress.check_static(url)
        except EgressError:
            raise InvalidInput(
                "callback_url must be an http(s) URL without credentials whose host is "
                "a public address (private ranges only if the operator allowed them)",
                detail={"setting": "TREADLE_EGRESS_ALLOW"},
            ) from None

    def defer(self, task: str, payload: Mapping[str, Any] | None = None, **opts: Any) -> JobHandle:
        """Enqueue a job of a registered task by name."""
        return self.enqueue([self.get_task(task).new_job(payload or {}, **opts)])[0]

    # -- reading and steering --------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the core migrations, then the plug-ins' own; returns the core versions.

        The plug-ins are this app's and the built-in kinds' (``treadle.kinds``), registered
        or not: a database is migrated for the installation, so a process that serves more
        kinds than the one that migrated (``treadle worker`` after ``app.migrate()``) finds
        its tables."""
        applied = self.store.migrate()
        self.migrate_plugins()
        return applied

    def migrate_plugins(self) -> dict[str, list[int]]:
        """Apply the plug-ins' own migrations (after the core's); the versions applied now,
        by plug-in name."""
        tracks: dict[str, str | None] = {ARTIFACTS_TRACK: ARTIFACTS_SQL}  # every kind's files
        tracks.update({p.name: p.sql_package for p in builtin_plugins()})
        tracks.update({p.name: p.sql_package for p in self._plugins.values()})
        tracks[STREAMS_TRACK] = STREAMS_SQL  # live job streams' own track (ADR 0011)
        return {name: self.store.migrate_plugin(name, sql_package)
                for name, sql_package in tracks.items() if sql_package is not None}

    def check_schema(self) -> None:
        """Refuse a database that is behind (run ``treadle migrate``) or ahead of the code,
        for the core schema and every registered plug-in's."""
        self.store.check_schema()
        self.store.check_plugin_schema(ARTIFACTS_TRACK, ARTIFACTS_SQL)
        for plugin in self._plugins.values():
            if plugin.sql_package is not None:
                self.store.check_plugin_schema(plugin.name, plugin.sql_package)

    # -- artifacts -------------------------------------------------------------

    @property
    def artifacts(self) -> ArtifactService:
        """The app's artifacts (``treadle.artifacts``): built on first use."""
        with self._artifacts_lock:
            if self._artifacts is None:
                from treadle.artifacts import (
                    ArtifactService,
                    default_artifacts_url,
                    open_artifact_store,
                )

                source = self._artifacts_source

                def backend() -> ArtifactStore:
                    if source is None:
                        return open_artifact_store(default_artifacts_url(self.url))
                    return open_artifact_store(source) if isinstance(source, str) else source

                self._artifacts = ArtifactService(self.store, backend)
                self.on_close(self._artifacts.close)
            return self._artifacts

    def configure_artifacts(self, artifacts: str | ArtifactStore) -> None:
        """Where artifacts live (``file:///dir``, ``s3://bucket/prefix`` or a store); the
        CLI calls it with ``TREADLE_ARTIFACTS_URL``. Only before the first use."""
        with self._artifacts_lock:
            if self._artifacts is not None:
                raise ConfigurationError("artifacts are in use: configure them before")
            self._artifacts_source = artifacts

    @property
    def artifacts_configured(self) -> bool:
        """Whether a store was chosen (else: the directory beside the SQLite file)."""
        return self._artifacts_source is not None

    def job_artifacts(self, job_id: int, *, tenant: str | None = None) -> list[Artifact]:
        """The files job ``job_id`` produced, oldest first."""
        return self.artifacts.for_job(job_id, tenant=tenant)

    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.get_job(job_id, tenant=tenant)

    def list_jobs(self, flt: JobFilter | None = None) -> list[Job]:
        return self.store.list_jobs(flt or JobFilter())

    def why_not_running(self, job: Job) -> dict[str, Any] | None:
        """For a queued job, the rule that holds it (``{"rule", "message"}``); else None."""
        return explain(self.store, job, self.clock.now())

    def job_progress(self, job_id: int, *, tenant: str | None = None) -> dict[str, Any] | None:
        """The job's latest progress (``{"done", "total", "message"}``) as its worker's
        heartbeats carried it to the stream (ADR 0016); None if it reported none."""
        from treadle.streams.model import PROGRESS
        from treadle.streams.repo import StreamRepo

        self.store.get_job(job_id, tenant=tenant)  # another tenant's job: not found
        repo = StreamRepo(self.store)
        if not repo.available():  # a database without the streams' tables
            return None
        item = repo.latest(job_id, PROGRESS)
        return None if item is None else dict(item.data)

    def job_events(self, job_id: int) -> list[JobEvent]:
        return self.store.events(job_id)

    def job_logs(self, job_id: int) -> list[JobLog]:
        return self.store.logs(job_id)

    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.cancel(job_id, tenant=tenant)

    def retry(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.retry(job_id, tenant=tenant)

    def release(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Release a quarantined job: queued again, its crash count reset (ADR 0015)."""
        return self.store.release(job_id, tenant=tenant)

    def discard(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Discard a quarantined job: failed for good (ADR 0015)."""
        return self.store.discard(job_id, tenant=tenant)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the app closes (extensions release what they started)."""
        self._on_close.append(callback)

    def close(self) -> None:
        for callback in reversed(self._on_close):
            callback()
        self._on_close.clear()
        self.store.close()

    def __enter__(self) -> Treadle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


MAX_PAYLOAD_BYTES = 1 << 20


def check_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload must be a JSON object of bounded size; refuse anything else up front."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("payload must be a JSON object (a dict)")
    storable.check(payload, "payload", max_bytes=MAX_PAYLOAD_BYTES)
    return dict(payload)
