from treadle.core.classify import classify
from treadle.core.errors import (
    ErrorClass,
    InvalidInput,
    Permanent,
    RateLimited,
    SandboxViolation,
)


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


def test_unknown_exceptions_are_transient_by_default() -> None:
    assert classify(raised(RuntimeError("x"))).error_class is ErrorClass.TRANSIENT


def test_explicit_classes_win_over_overrides() -> None:
    info = classify(raised(Permanent("no")), {Exception: ErrorClass.TRANSIENT})
    assert info.error_class is ErrorClass.PERMANENT and info.message == "no"


def test_overrides_match_subclasses() -> None:
    info = classify(raised(KeyError("k")), {LookupError: ErrorClass.INVALID_INPUT})
    assert info.error_class is ErrorClass.INVALID_INPUT


def test_default_class_can_be_changed_per_task() -> None:
    info = classify(raised(RuntimeError()), default=ErrorClass.PERMANENT)
    assert info.error_class is ErrorClass.PERMANENT


def test_builtin_timeout_and_memory_errors() -> None:
    assert classify(raised(TimeoutError())).error_class is ErrorClass.TIMEOUT
    assert classify(raised(MemoryError())).error_class is ErrorClass.RESOURCE_EXHAUSTED


def test_rate_limited_carries_retry_after_and_detail_has_traceback() -> None:
    info = classify(raised(RateLimited(retry_after=7)))
    assert info.retry_after == 7
    assert "Traceback" in info.detail["traceback"]


def test_wire_format_is_snake_case_class() -> None:
    info = classify(raised(SandboxViolation("escape", detail={"syscall": "socket"})))
    data = info.to_json()
    assert data["class"] == "sandbox_violation"
    assert data["detail"]["info"] == {"syscall": "socket"}


def test_sandbox_violation_and_invalid_input_are_not_retryable() -> None:
    assert not SandboxViolation().retryable
    assert not InvalidInput().retryable
    assert ErrorClass.LEASE_LOST.retryable
