"""Registration: tasks, periodic tasks, cron schedules, workflows and agents.

What an app can run, declared at import time (``@app.task``, ``@app.cron``, ...);
registration refuses a bad declaration before anything is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from treadle.app_state import AppState
from treadle.core.classify import Overrides
from treadle.core.cron import CronSchedule
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    InvalidInput,
    UnknownTask,
)
from treadle.core.job import (
    DEFAULT_MAX_CRASHES,
    DEFAULT_QUEUE,
    DEFAULT_TENANT,
)
from treadle.core.keys import check_key_format
from treadle.core.retry import DEFAULT_POLICY, RetryPolicy
from treadle.task import KeySpec, Task, TaskOptions, registered_name
from treadle.worker.scheduler import Periodic

if TYPE_CHECKING:
    from treadle.agents.agent import Agent
    from treadle.workflows import Step, Workflow
    from treadle.workflows.service import WorkflowService

P = ParamSpec("P")
R = TypeVar("R")


class Registration(AppState):
    """The app's registration methods (``@app.task``, ``@app.cron``, ...)."""

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
            task_name = registered_name(
                "task", f"{f.__module__}.{f.__qualname__}" if name is None else name)
            for spec in (options.concurrency, options.rate_limit):
                if spec is not None and not callable(spec[0]):
                    check_key_format(task_name, spec[0])
            if task_name in self.tasks:
                raise ConfigurationError(f"a task named {task_name!r} is already registered")
            t = Task(self._app, f, task_name, options)
            self.tasks[task_name] = t
            return t

        return register(fn) if fn is not None else register

    def periodic(
        self, *, every: float, payload: Mapping[str, Any] | None = None, **task_options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a task that the scheduler enqueues every ``every`` seconds."""

        if isinstance(every, bool) or not isinstance(every, int | float):
            raise ConfigurationError("periodic interval must be a number of seconds")

        def register(f: Callable[P, R]) -> Task[P, R]:
            t: Task[P, R] = self.task(**task_options)(f)
            try:
                job = self._scheduled_job(t, payload)
                self.periodics.append(Periodic(t.name, every, job))
            except ConfigurationError:
                del self.tasks[t.name]  # a bad schedule registers nothing
                raise
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

            app = self._app
            wf = register(app, fn, name=name, options=options)
            if app.find_plugin(Workflows) is None:  # serve the kind: "one package plus a line"
                app.use(Workflows())
            return wf

        return wrap

    def agent(self, *, name: str, model: Any, **options: Any) -> Agent:
        """Register a durable LLM agent; its runs are jobs of kind ``agent``
        (docs/agents.md). ``agent.defer(input=...)`` starts one."""
        from treadle.agents.agent import register as register_agent

        return register_agent(self._app, name=name, model=model, **options)

    @property
    def workflows(self) -> WorkflowService:
        """The workflow plug-in's service (registers ``Workflows`` on first use)."""
        from treadle.workflows.plugin import Workflows

        plugin = self._app.find_plugin(Workflows)
        if plugin is None:
            plugin = self._app.use(Workflows())
        return plugin.service

    def send_event(self, key: str, payload: Any = None, *, tenant: str = DEFAULT_TENANT) -> int:
        """Store an event and wake the workflows waiting for ``key``; returns its id."""
        return self.workflows.send_event(key, payload, tenant=tenant)[0]

    def job_steps(self, job_id: int) -> list[Step]:
        """A workflow job's steps, in order."""
        from treadle.jobs import checked_job_id

        return self.workflows.steps(checked_job_id(job_id))

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
            try:
                self._scheduled_job(t, payload)
            except ConfigurationError:
                del self.tasks[t.name]
                raise
            self.crons.append(schedule)
            return t

        return register

    @staticmethod
    def _scheduled_job(t: Task[Any, Any], payload: Mapping[str, Any] | None) -> dict[str, Any]:
        """The payload the scheduler will enqueue, checked now as a submit would (storable,
        bounded, fitting the function, its flow-control keys computable): a payload that
        cannot be enqueued would fail at every tick, with nobody there to see it."""
        if payload is not None and not isinstance(payload, Mapping):
            raise ConfigurationError(f"the payload of scheduled task {t.name!r} must be a dict")
        try:
            return t.new_job(dict(payload or {})).payload
        except InvalidInput as exc:
            raise ConfigurationError(f"scheduled task {t.name!r}: {exc.message}") from None

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
        if not isinstance(name, str) or name not in {c.name for c in self.crons}:
            known = ", ".join(sorted(c.name for c in self.crons)) or "none"
            raise UnknownTask(f"no cron schedule named {name!r} (registered: {known})",
                              detail={"schedule": name})
        self.store.set_schedule_paused(name, paused)

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.tasks[name]
        except (KeyError, TypeError):  # TypeError: not even hashable, so no task's name
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTask(
                f"unknown task {name!r} (registered: {known})", detail={"task": name}
            ) from None

