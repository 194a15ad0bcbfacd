"""ADR 0102: limits hold everywhere.

Before the fix the wall-clock limit did not cover host calls (a 1 s run lasted as long
as its binding), a warm Python sandbox that stopped reading its pipe blocked the caller
for ever, and /dev and /dev/shm were writable, uncapped tmpfs outside the memory limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from tests.security.conftest import js, py, still_serving, tenant
from treadle.core.errors import Timeout, TreadleError
from treadle.sandbox import Bindings, Limits, RunResult, SandboxManager, WorkerSpec

ONE_SECOND = Limits(timeout=1.0, cpu_seconds=1.0, memory_mb=128)


class RunsSpecs(Protocol):
    """``SandboxManager.load`` or ``.get``: one run of a spec."""

    def __call__(self, spec: WorkerSpec, input: Any, *, tenant: str) -> RunResult: ...


class SlowKV:
    """A binding that hangs until released (a slow server behind a host call)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def get(self, key: str) -> str | None:
        self.release.wait(30)
        return "late"

    def put(self, key: str, value: str) -> None:
        self.release.wait(30)

    def delete(self, key: str) -> None:
        self.release.wait(30)


def _bounded(fn: Callable[[], Any], limit: float) -> BaseException | None:
    """Run ``fn`` in a thread; fail the test (not hang it) if it outlives ``limit``."""
    box: list[BaseException | None] = [None]

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            box[0] = exc

    th = threading.Thread(target=target, daemon=True)
    t0 = time.monotonic()
    th.start()
    th.join(limit)
    assert not th.is_alive(), f"still running after {limit}s (limit not enforced)"
    assert time.monotonic() - t0 < limit
    return box[0]


@pytest.mark.parametrize("language", ["javascript", "python"])
@pytest.mark.parametrize("mode", ["load", "get"])
def test_deadline_covers_a_slow_host_call(
    manager: SandboxManager, language: str, mode: str
) -> None:
    slow = SlowKV()
    code = ("async function handler(i, env) { return await env.kv.get('k') }"
            if language == "javascript" else "def handler(i, env):\n    return env.kv.get('k')")
    spec = (js if language == "javascript" else py)(code, ONE_SECOND, kv=True)
    run = manager.get if mode == "get" else manager.load
    try:
        err = _bounded(lambda: run(spec, None, tenant=tenant(), bindings=Bindings(kv=slow)), 4.0)
    finally:
        slow.release.set()
    assert isinstance(err, Timeout), err
    still_serving(manager)


def test_a_warm_python_sandbox_that_stops_reading_cannot_block_the_caller(
    manager: SandboxManager,
) -> None:
    code = """
import sys, time
def handler(input, env):
    if input == 'plant':
        boot = sys.modules['__main__']
        boot._recv = lambda: time.sleep(3600)   # never read the pipe again
        return 'planted'
    return len(input)
"""
    t = tenant()
    spec = py(code, ONE_SECOND)
    assert manager.get(spec, "plant", tenant=t).output == "planted"
    big = "x" * (4 << 20)  # far more than a pipe buffer
    err = _bounded(lambda: manager.get(spec, big, tenant=t), 5.0)
    assert isinstance(err, Timeout), err
    still_serving(manager)


WRITABLE_MOUNTS = r"""
import os
def handler(input, env):
    found = {}
    for line in open('/proc/self/mounts'):
        dev, path, fstype, opts = line.split()[:4]
        found[path] = [fstype, opts]
    tries = {}
    for path in ('/dev/shm/x', '/dev/x', '/x', '/proc/x', '/usr/lib/x', '/tmp/x'):
        try:
            with open(path, 'w') as fh:
                fh.write('x')
            tries[path] = 'written'
        except OSError as exc:
            tries[path] = exc.errno
    return {'mounts': found, 'tries': tries}
"""


def test_every_writable_mount_is_capped_or_read_only(manager: SandboxManager) -> None:
    out = manager.load(py(WRITABLE_MOUNTS), None, tenant=tenant()).output
    assert out["tries"]["/tmp/x"] == "written"  # the one scratch space
    for path in ("/dev/shm/x", "/dev/x", "/x", "/proc/x", "/usr/lib/x"):
        assert out["tries"][path] != "written", path
    for path, (fstype, opts) in out["mounts"].items():
        rw = "rw" in opts.split(",")
        if fstype == "tmpfs" and rw:
            assert "size=" in opts, (path, opts)  # capped
        # procfs, devpts and the device-node bind mounts hold no user data


def test_dev_shm_cannot_hold_memory_outside_the_limit(manager: SandboxManager) -> None:
    code = ("def handler(input, env):\n"
            "    with open('/dev/shm/blob', 'wb') as fh:\n"
            "        fh.write(b'x' * (64 << 20))\n")
    with pytest.raises(TreadleError) as info:
        manager.load(py(code), None, tenant=tenant())
    assert info.value.error_class.value in ("sandbox_violation", "resource_exhausted")
    still_serving(manager)


def test_python_cpu_limit_holds_in_a_warm_instance(manager: SandboxManager) -> None:
    """The soft RLIMIT_CPU signal can be ignored; the parent's count still holds per run."""
    code = ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
            "def handler(input, env):\n    while True:\n        pass\n")
    limits = Limits(timeout=8.0, cpu_seconds=0.5, memory_mb=128)
    for run in (manager.load, manager.get):
        def run_once(run: RunsSpecs = run) -> RunResult:
            return run(py(code, limits), None, tenant=tenant())

        err = _bounded(run_once, 6.0)
        assert isinstance(err, TreadleError) and err.error_class.value == "resource_exhausted", err
