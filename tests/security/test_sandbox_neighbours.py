"""ADR 0102: one tenant's leftovers and long runs do not cost another tenant.

Before the fix, threads and timers left in warm instances kept burning CPU charged to
later runs, memory held by warm JavaScript contexts made another tenant's run fail, and
a single JavaScript host made every tenant wait behind one long run.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.security.conftest import js, py, still_serving, tenant
from treadle.core.errors import Timeout
from treadle.sandbox import Bindings, Limits, SandboxManager

SLOW = Limits(timeout=4.0, cpu_seconds=4.0, memory_mb=128)


class Signal:
    """A kv binding that tells the test the run has started (no sleeping to find out)."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def get(self, key: str) -> str | None:
        self.started.set()
        return None

    def put(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


def test_a_long_js_run_does_not_hold_another_tenants_runs() -> None:
    long_run = ("async function handler(i, env) { await env.kv.get('go');"
                " const end = Date.now() + 3000; while (Date.now() < end) {} return 'done' }")
    quick = js("function handler(i) { return i }")
    with SandboxManager(python_pool_size=0, js_hosts=1) as mgr:
        mgr.warm_up()
        signal = Signal()
        results: list[object] = []
        hog = threading.Thread(target=lambda: results.append(
            mgr.load(js(long_run, SLOW, kv=True), None, tenant="hog",
                     bindings=Bindings(kv=signal)).output))
        hog.start()
        try:
            assert signal.started.wait(10)
            t0 = time.monotonic()
            assert mgr.load(quick, 1, tenant="other").output == 1
            assert mgr.get(quick, 2, tenant="other").output == 2
            waited = time.monotonic() - t0
        finally:
            hog.join(15)
        assert results == ["done"]
        assert waited < 2.0, f"waited {waited:.2f}s behind another tenant's run"


def test_js_timers_left_in_a_warm_context_discard_it() -> None:
    code = """
    let runs = 0;
    function handler(input) {
      runs++;
      if (input === 'arm') {
        const burn = () => { const end = Date.now() + 20; while (Date.now() < end) {}
                             setTimeout(burn, 1) };
        setTimeout(burn, 1);
      }
      return runs;
    }
    """
    spec = js(code, allow_wasm=True)  # setTimeout needs Atomics (ADR 0102)
    t = tenant()
    with SandboxManager(python_pool_size=0, js_hosts=1) as mgr:
        assert mgr.get(spec, "plain", tenant=t).output == 1
        second = mgr.get(spec, "plain", tenant=t)
        assert (second.output, second.reused) == (2, True)  # reuse works when idle
        assert mgr.get(spec, "arm", tenant=t).output == 3
        after = mgr.get(spec, "plain", tenant=t)
        assert (after.output, after.reused) == (1, False)  # the armed context was dropped
        still_serving(mgr)


def test_memory_held_by_warm_js_contexts_does_not_fail_another_tenants_run() -> None:
    roomy = Limits(timeout=20, cpu_seconds=20, memory_mb=256)
    hold = ("globalThis.kept = globalThis.kept || new Array(7.5e6).fill(1.5);"
            " function handler(i) { return kept.length }")
    big = js("function handler() { const a = new Array(25e6).fill(2.5); return a.length }",
             roomy)
    with SandboxManager(python_pool_size=0, js_hosts=1, js_hosts_max=1) as mgr:
        hog = tenant()
        for n in range(4):  # four warm contexts of ~60 MB heap each
            spec = js(hold + f"\n// {n}", roomy)
            assert mgr.get(spec, None, tenant=hog).output == 7_500_000
        assert mgr.load(big, None, tenant=tenant()).output == 25_000_000
        assert mgr.get(big, None, tenant=tenant()).output == 25_000_000
        still_serving(mgr)


@pytest.mark.parametrize(
    "leftover",
    [
        "threading.Thread(target=burn, daemon=True).start()",
        "signal.signal(signal.SIGALRM, lambda *a: burn()); signal.setitimer("
        "signal.ITIMER_REAL, 0.05, 0.05)",
    ],
    ids=["thread", "itimer"],
)
def test_python_leftovers_in_a_warm_instance_discard_it(
    manager: SandboxManager, leftover: str
) -> None:
    code = f"""
import signal, threading, time
runs = 0
def burn():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
def handler(input, env):
    global runs
    runs += 1
    if input == 'arm':
        {leftover}
    return runs
"""
    t = tenant()
    spec = py(code)
    assert manager.get(spec, "plain", tenant=t).output == 1
    assert manager.get(spec, "plain", tenant=t).reused is True
    assert manager.get(spec, "arm", tenant=t).output == 3
    after = manager.get(spec, "plain", tenant=t)
    assert (after.output, after.reused) == (1, False)


def test_python_instance_tampering_with_its_own_leftover_report_is_still_dropped(
    manager: SandboxManager,
) -> None:
    """The sandbox's own "dirty" flag is not trusted: the parent checks /proc itself."""
    code = """
import sys, threading, time
runs = 0
def handler(input, env):
    global runs
    runs += 1
    if input == 'arm':
        sys.modules['__main__']._leftovers = lambda: False
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    return runs
"""
    t = tenant()
    assert manager.get(py(code), "arm", tenant=t).output == 1
    assert manager.get(py(code), "plain", tenant=t).reused is False


def test_a_js_heap_limit_holds_per_context(manager: SandboxManager) -> None:
    spec = js("function handler() { const a = []; for (;;) a.push(new Array(1e5).fill(1.5)) }",
              Limits(timeout=10, cpu_seconds=10, memory_mb=64))
    with pytest.raises(Exception) as info:
        manager.get(spec, None, tenant=tenant())
    assert not isinstance(info.value, Timeout)
    assert getattr(info.value, "error_class", None) is not None
    assert info.value.error_class.value == "resource_exhausted"  # type: ignore[attr-defined]
    still_serving(manager)


def test_sandboxes_started_from_a_short_lived_thread_outlive_it() -> None:
    """bwrap's parent-death signal follows the *thread* that spawned it: a warm instance
    or an extra JS host started for a worker thread must not die when that thread ends."""
    with SandboxManager(python_pool_size=0, js_hosts=1) as mgr:
        t = tenant()
        specs = [py("n = 0\ndef handler(i, env):\n    global n\n    n += 1\n    return n"),
                 js("let n = 0; function handler() { return ++n }")]
        for spec in specs:
            th = threading.Thread(target=lambda spec=spec: mgr.get(spec, None, tenant=t))
            th.start()
            th.join(30)
            again = mgr.get(spec, None, tenant=t)
            assert (again.output, again.reused) == (2, True)


def test_a_python_handler_that_raises_after_starting_a_thread_is_not_reused(
    manager: SandboxManager,
) -> None:
    code = """
import threading, time
runs = 0
def handler(input, env):
    global runs
    runs += 1
    if input == 'arm':
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        raise ValueError('left a thread behind')
    return runs
"""
    t = tenant()
    assert manager.get(py(code), "plain", tenant=t).output == 1
    with pytest.raises(Exception, match="left a thread"):
        manager.get(py(code), "arm", tenant=t)
    after = manager.get(py(code), "plain", tenant=t)
    assert (after.output, after.reused) == (1, False)
