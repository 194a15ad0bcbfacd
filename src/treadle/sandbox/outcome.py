"""Turning what happened in a sandbox into a classified Treadle error."""

from __future__ import annotations

import signal
from typing import Any

from treadle.core.errors import (
    InvalidInput,
    InvalidOutput,
    Permanent,
    ResourceExhausted,
    SandboxViolation,
    Timeout,
    TreadleError,
)
from treadle.sandbox import wirejson

# Result kinds reported by the sandbox hosts (_pyboot.py, _jsboot.py).
_INVALID = frozenset({"syntax", "no_handler", "bad_input"})
_RESOURCE = frozenset({"memory", "stack", "output", "log", "fsize", "cpu"})
_MESSAGES = {
    "memory": "memory limit exceeded",
    "stack": "maximum call stack / recursion depth exceeded",
    "output": "output limit exceeded",
    "log": "log limit exceeded",
    "fsize": "file size limit exceeded",
    "cpu": "CPU time limit exceeded",
}


def from_reply(reply: dict[str, Any], host_limit_hit: bool, max_host_calls: int) -> TreadleError:
    """The error for a non-ok result frame."""
    kind = str(reply.get("kind", "user"))
    message = str(reply.get("message") or kind)[:4000]
    stack = str(reply.get("stack") or "")[-8000:]
    detail: dict[str, Any] = {"kind": kind}
    if stack:
        detail["stack"] = stack
    if host_limit_hit:
        return ResourceExhausted(
            f"host call limit of {max_host_calls} exceeded", detail={"kind": "host_calls"}
        )
    if kind in _INVALID:
        return InvalidInput(message, detail=detail)
    if kind == "bad_output":  # the result is not JSON: it cannot be stored (ADR 0006)
        return InvalidOutput(message, detail=detail)
    if kind in _RESOURCE:
        return ResourceExhausted(f"{_MESSAGES[kind]}: {message}", detail=detail)
    if kind == "violation":
        return SandboxViolation(message, detail=detail)
    return Permanent(message, detail=detail)


def from_exit(returncode: int | None, language: str) -> TreadleError:
    """The error for a sandbox process that died before answering.

    bwrap reports a child killed by signal N as exit status 128+N.
    """
    sig = None
    if returncode is not None and returncode < 0:
        sig = -returncode
    elif returncode is not None and returncode > 128:
        sig = returncode - 128
    detail: dict[str, Any] = {"returncode": returncode, "language": language}
    if sig is not None:
        try:
            detail["signal"] = signal.Signals(sig).name
        except ValueError:
            detail["signal"] = sig
    if sig == signal.SIGSYS:
        return SandboxViolation(
            "the sandbox was killed for a forbidden system call "
            "(network, exec, process creation or another escape attempt)",
            detail=detail,
        )
    if sig in (signal.SIGXCPU, signal.SIGXFSZ):
        name = "CPU time" if sig == signal.SIGXCPU else "file size"
        return ResourceExhausted(f"{name} limit exceeded", detail=detail)
    if sig == signal.SIGKILL and language == "python":
        # The sandboxed interpreter is PID 1 of its namespace: SIGXCPU (soft limit) is
        # ignored by a PID 1 without a handler, so the CPU limit ends it with the hard
        # limit's SIGKILL. Nothing inside can send it SIGKILL, and our own kills are
        # classified before we get here (timeouts).
        return ResourceExhausted("CPU time limit exceeded", detail=detail)
    if sig in (
        signal.SIGKILL, signal.SIGABRT, signal.SIGTRAP, signal.SIGSEGV, signal.SIGILL
    ) and (language == "javascript"):
        # V8 aborts (or is killed by the OOM killer) when memory runs out outside the heap.
        return ResourceExhausted("the JavaScript host ran out of memory", detail=detail)
    return Permanent(f"the sandbox process died (exit status {returncode})", detail=detail)


def parse_output(text: str) -> Any:
    """The handler's result, parsed from the JSON text its sandbox sent.

    Non-finite numbers and nesting deeper than ``wirejson.MAX_DEPTH`` are refused here,
    whether the handler returned them or a hostile run forged its result frame: the
    value could not be stored. Classified ``invalid_output`` like every other result that
    cannot be stored (ADR 0006; docs/dynamic-workers.md, "Errors and retries").
    """
    try:
        return wirejson.loads(text)
    except wirejson.UnsafeJSON as exc:
        raise InvalidOutput(
            f"handler result is not storable JSON: {exc}", detail={"kind": "bad_output"}
        ) from None


def timeout(seconds: float) -> Timeout:
    return Timeout(
        f"run exceeded its wall-clock limit of {seconds:g}s", detail={"timeout": seconds}
    )
