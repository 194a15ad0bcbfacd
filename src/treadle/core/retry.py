"""Retry policy: a pure function of (error, attempt) returning a decision.

Backoff is exponential with *full jitter* (delay drawn uniformly from
``[0, min(cap, base * factor ** (attempt - 1))]``), which spreads a herd of
failing jobs out instead of retrying them in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from treadle.core.errors import ConfigurationError, ErrorClass, ErrorInfo
from treadle.core.storable import finite

# The longest a retry waits (a policy's cap, a rate limiter's retry_after): a year.
MAX_RETRY_DELAY = 366 * 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: bool = True
    # Classes never retried, whatever attempts remain; on top of the
    # non-retryable classes of ErrorClass.retryable.
    never_retry: frozenset[ErrorClass] = frozenset()

    def __post_init__(self) -> None:
        # NaN passes every comparison below and an infinite or enormous delay cannot
        # become a start time: the worker would fail the job instead of retrying it.
        for name in ("base", "factor", "cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not finite(value):
                raise ConfigurationError(f"retry {name} must be a finite number")
        if self.base < 0 or self.cap < 0:
            raise ConfigurationError("retry base and cap must be >= 0")
        if self.cap > MAX_RETRY_DELAY:
            raise ConfigurationError(f"retry cap must be at most {MAX_RETRY_DELAY:.0f} s")
        if self.factor < 1:
            raise ConfigurationError("retry factor must be >= 1")

    def backoff_ceiling(self, attempt: int) -> float:
        """The largest delay after ``attempt`` (1-based) failed."""
        exponent = max(0, attempt - 1)
        # Guard the float power against overflow for absurd attempt counts.
        if exponent > 64:
            return self.cap
        return float(min(self.cap, self.base * self.factor**exponent))


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


DEFAULT_POLICY = RetryPolicy()


def decide(
    error: ErrorInfo,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy = DEFAULT_POLICY,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Whether and when to retry after ``attempt`` failed with ``error``."""
    cls = error.error_class
    if not cls.retryable or cls in policy.never_retry:
        return RetryDecision(False, reason=f"{cls.value} is not retried")
    if attempt >= max_attempts:
        return RetryDecision(False, reason="attempts_exhausted")
    ceiling = policy.backoff_ceiling(attempt)
    delay = (rng or random).uniform(0.0, ceiling) if policy.jitter else ceiling
    if cls is ErrorClass.RATE_LIMITED and error.retry_after is not None:
        # The far side said when; never come back earlier than that, but within the
        # longest retry delay (an endless wait is a failure nobody would see).
        delay = min(max(delay, error.retry_after), MAX_RETRY_DELAY)
    return RetryDecision(True, delay, reason="retry")
