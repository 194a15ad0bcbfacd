"""Retry policy: a pure function of (error, attempt) returning a decision.

Backoff is exponential with *full jitter* (delay drawn uniformly from
``[0, min(cap, base * factor ** (attempt - 1))]``), which spreads a herd of
failing jobs out instead of retrying them in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from treadle.core.errors import ConfigurationError, ErrorClass, ErrorInfo


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
        if self.base < 0 or self.cap < 0:
            raise ConfigurationError("retry base and cap must be >= 0")
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
        # The far side said when; never come back earlier than that.
        delay = max(delay, error.retry_after)
    return RetryDecision(True, delay, reason="retry")
