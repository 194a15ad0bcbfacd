"""Tasks: a registered function, its options, and the jobs it makes (docs/glossary.md: task).

Apart from the app because a task is what a producer holds: it checks a payload and
turns it into a ``NewJob`` before anything is stored, and needs the app only to enqueue.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from treadle.core import storable
from treadle.core.classify import Overrides
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    InvalidInput,
)
from treadle.core.job import (
    DEFAULT_MAX_CRASHES,
    DEFAULT_QUEUE,
    DEFAULT_TENANT,
    NewJob,
    check_max_crashes,
    validate_name,
)
from treadle.core.keys import check_key_limit, check_rate_limit, job_key
from treadle.core.retry import DEFAULT_POLICY, RetryPolicy

if TYPE_CHECKING:
    from treadle.app import Treadle
    from treadle.jobs import JobHandle

KeySpec = str | Callable[[dict[str, Any]], str]

P = ParamSpec("P")
R = TypeVar("R")


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
        # Refused at registration: an option a job could not carry would otherwise fail
        # every defer of the task, or every attempt in the worker (as invalid_output).
        registered_name("queue", self.queue)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) \
                or not 0 <= self.retries < MAX_ATTEMPTS:
            raise ConfigurationError(
                f"retries must be an integer from 0 to {MAX_ATTEMPTS - 1}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float)
            or not 0 < self.timeout <= MAX_TIMEOUT
        ):
            raise ConfigurationError("timeout must be a positive number of seconds "
                                     "(at most a week) or None")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int) \
                or not -32768 <= self.priority <= 32767:
            raise ConfigurationError("priority must be an integer from -32768 to 32767")
        if not isinstance(self.retry_policy, RetryPolicy):
            raise ConfigurationError("retry_policy must be a treadle RetryPolicy")
        if not isinstance(self.default_error_class, ErrorClass):
            try:  # a StrEnum: its value names it ("permanent")
                object.__setattr__(self, "default_error_class",
                                   ErrorClass(self.default_error_class))
            except ValueError:
                raise ConfigurationError(
                    f"default_error_class must be one of {[c.value for c in ErrorClass]}"
                ) from None
        if self.error_overrides is not None:
            _check_overrides(self.error_overrides)
        if not isinstance(self.pass_context, bool):
            raise ConfigurationError("pass_context must be True or False")
        check_max_crashes(self.max_crashes, ConfigurationError)
        if self.concurrency is not None:
            check_key_limit(self.concurrency, "concurrency")
        if self.rate_limit is not None:
            check_rate_limit(self.rate_limit)


MAX_ATTEMPTS = 1000  # NewJob's bound on max_attempts (retries + 1)
MAX_TIMEOUT = 7 * 24 * 3600.0  # NewJob's bound on an attempt's timeout
# A delay (seconds) a job may be deferred by; a later start is given as run_at.
MAX_DELAY = 100 * 366 * 24 * 3600.0


def registered_name(what: str, name: object) -> str:
    """A task, workflow, agent or queue name given at registration: the rules of a job's
    names (:func:`validate_name`), refused as a configuration error."""
    try:
        return validate_name(what, name)  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise ConfigurationError(exc.message) from None


def _check_overrides(overrides: object) -> None:
    """``{ExceptionClass: ErrorClass}``: what the classifier matches against."""
    if not isinstance(overrides, Mapping) or not all(
        isinstance(k, type) and issubclass(k, BaseException) and isinstance(v, ErrorClass)
        for k, v in overrides.items()
    ):
        raise ConfigurationError(
            "error_overrides must map exception classes to ErrorClass members")


def check_delay(delay: object) -> float:
    """Seconds to defer a job by: a finite number from 0 to :data:`MAX_DELAY`."""
    if isinstance(delay, bool) or not isinstance(delay, int | float) \
            or not 0 <= delay <= MAX_DELAY:
        raise InvalidInput(f"delay must be a number of seconds from 0 to {MAX_DELAY:.0f}")
    return float(delay)


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
        self._binds = _KeywordBinding.of(self._signature)
        self._plain: tuple[TaskOptions, str, NewJob] | None = None  # see _plain_job

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
            run_at = self.app.clock.now() + timedelta(seconds=check_delay(delay))
        if not isinstance(payload, Mapping):
            raise InvalidInput("payload must be a JSON object (a dict)")
        # NewJob checks the payload and encodes it once; the size limit measures that
        # encoding (no second walk, no second json.dumps: ADR 0027).
        if (run_at is None and idempotency_key is None and priority is None and queue is None
                and tenant == DEFAULT_TENANT and callback_url is None):
            # The common case: every option the task's own. The request is this task's
            # plain one, checked once, with this payload (ADR 0032).
            nj = self._plain_job().with_payload(dict(payload))
        else:
            nj = NewJob(
                task=self.name,
                payload=dict(payload),
                queue=self.options.queue if queue is None else queue,
                priority=self.options.priority if priority is None else priority,
                run_at=run_at,
                max_attempts=self.options.retries + 1,
                timeout=self.options.timeout,
                idempotency_key=idempotency_key,
                tenant=tenant,
                callback_url=callback_url,
                max_crashes=self.options.max_crashes,
            )
        storable.check_size(nj.payload_json, "payload", MAX_PAYLOAD_BYTES)
        self.check_arguments(nj.payload)
        if self.options.concurrency is not None or self.options.rate_limit is not None:
            # The keys are computed from a payload already found storable and bindable.
            nj = replace(nj, **self._concurrency(nj.payload))
        return nj

    def _plain_job(self) -> NewJob:
        """This task's request with every option its own and an empty payload: built (and
        so checked) on first use, then copied with each job's payload. Built again if the
        task's name or options object were replaced."""
        cached = self._plain
        if cached is not None and cached[0] is self.options and cached[1] is self.name:
            return cached[2]
        plain = NewJob(
            task=self.name,
            queue=self.options.queue,
            priority=self.options.priority,
            max_attempts=self.options.retries + 1,
            timeout=self.options.timeout,
            tenant=DEFAULT_TENANT,
            max_crashes=self.options.max_crashes,
        )
        self._plain = (self.options, self.name, plain)
        return plain

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
        if self._binds is not None and self._binds.accepts(probe):
            return payload  # what bind() would accept; it still explains a refusal
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
        if not isinstance(payloads, Iterable) or isinstance(payloads, str | bytes | Mapping):
            raise InvalidInput("defer_many takes an iterable of payloads (dicts)")
        return self.app.enqueue([self.new_job(p) for p in payloads])

    def configure(self, **options: Any) -> _Configured:
        """``task.configure(idempotency_key="k", delay=5).defer(x=1)``."""
        return _Configured(self, check_job_options(options))


# The keyword options of ``Task.new_job`` (and so of ``configure``).
_JOB_OPTIONS = frozenset({"idempotency_key", "run_at", "delay", "priority", "queue", "tenant",
                          "callback_url"})


def check_job_options(options: dict[str, Any]) -> dict[str, Any]:
    """Refuse keyword options a job does not have (a typo would be a TypeError at defer)."""
    unknown = sorted(set(options) - _JOB_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown job option(s) {unknown}: use {sorted(_JOB_OPTIONS)}")
    return options


class _Configured:
    def __init__(self, task: Task[Any, Any], options: dict[str, Any]) -> None:
        self._task = task
        self._options = options

    def defer(self, **kwargs: Any) -> JobHandle:
        return self._task.app.enqueue([self._task.new_job(kwargs, **self._options)])[0]



MAX_PAYLOAD_BYTES = 1 << 20


def check_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload must be a JSON object of bounded size; refuse anything else up front."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("payload must be a JSON object (a dict)")
    storable.check(payload, "payload", max_bytes=MAX_PAYLOAD_BYTES)
    return dict(payload)


@dataclass(frozen=True)
class _KeywordBinding:
    """When ``Signature.bind(**payload)`` succeeds, decided from sets of names: a
    payload is only ever bound as keywords, and ``bind`` cost more than the rest of a
    ``defer``. ``of`` gives None for a signature with positional-only parameters (their
    rules are subtler); such tasks always call ``bind``."""

    names: frozenset[str]  # parameters a keyword can fill
    required: frozenset[str]  # of those, the ones without a default
    any_keyword: bool  # the function takes **kwargs

    @classmethod
    def of(cls, sig: inspect.Signature) -> _KeywordBinding | None:
        P_ = inspect.Parameter
        params = sig.parameters.values()
        if any(p.kind is P_.POSITIONAL_ONLY for p in params):
            return None
        named = [p for p in params if p.kind in (P_.POSITIONAL_OR_KEYWORD, P_.KEYWORD_ONLY)]
        return cls(
            names=frozenset(p.name for p in named),
            required=frozenset(p.name for p in named if p.default is P_.empty),
            any_keyword=any(p.kind is P_.VAR_KEYWORD for p in params),
        )

    def accepts(self, payload: Mapping[str, Any]) -> bool:
        keys = payload.keys()
        return self.required <= keys and (self.any_keyword or keys <= self.names)
