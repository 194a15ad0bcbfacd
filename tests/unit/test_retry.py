import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadle.core.errors import ConfigurationError, ErrorClass, ErrorInfo
from treadle.core.retry import RetryPolicy, decide


def err(cls: ErrorClass, retry_after: float | None = None) -> ErrorInfo:
    return ErrorInfo(cls, "boom", retry_after=retry_after)


@given(
    attempt=st.integers(min_value=1, max_value=500),
    base=st.floats(min_value=0, max_value=100),
    factor=st.floats(min_value=1, max_value=10),
    cap=st.floats(min_value=0, max_value=3600),
    seed=st.integers(),
)
def test_full_jitter_delay_is_within_zero_and_capped_ceiling(
    attempt: int, base: float, factor: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base=base, factor=factor, cap=cap)
    d = decide(err(ErrorClass.TRANSIENT), attempt, attempt + 1, policy, random.Random(seed))
    assert d.retry
    assert 0 <= d.delay <= min(cap, policy.backoff_ceiling(attempt)) + 1e-9


@given(st.integers(min_value=1, max_value=200))
def test_ceiling_never_decreases_with_attempts(attempt: int) -> None:
    p = RetryPolicy(base=0.5, factor=2.0, cap=120)
    assert p.backoff_ceiling(attempt) <= p.backoff_ceiling(attempt + 1) <= 120


@given(st.sampled_from(list(ErrorClass)), st.integers(1, 10), st.integers(1, 10))
def test_non_retryable_classes_never_retry(cls: ErrorClass, attempt: int, max_a: int) -> None:
    d = decide(err(cls), attempt, max_a)
    if not cls.retryable or attempt >= max_a:
        assert not d.retry
    else:
        assert d.retry


def test_attempts_exhausted_is_named() -> None:
    assert decide(err(ErrorClass.TRANSIENT), 3, 3).reason == "attempts_exhausted"


def test_rate_limited_retry_after_is_honoured() -> None:
    d = decide(err(ErrorClass.RATE_LIMITED, retry_after=42.0), 1, 5, RetryPolicy(cap=1))
    assert d.retry and d.delay >= 42.0


def test_policy_can_refuse_a_retryable_class() -> None:
    p = RetryPolicy(never_retry=frozenset({ErrorClass.TIMEOUT}))
    assert not decide(err(ErrorClass.TIMEOUT), 1, 5, p).retry


def test_without_jitter_delay_is_the_ceiling() -> None:
    p = RetryPolicy(base=2, factor=3, cap=100, jitter=False)
    assert decide(err(ErrorClass.TRANSIENT), 3, 9, p).delay == 18


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(factor=0.5)
    with pytest.raises(ConfigurationError):
        RetryPolicy(base=-1)
