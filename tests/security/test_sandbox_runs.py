"""ADR 0102: runs cannot talk across each other through host calls.

Before the fix, a JavaScript handler could start ``env.kv`` calls without awaiting them
and return: their frames reached the parent during the *next* run on that host and were
answered with that run's bindings, i.e. another tenant's kv.
"""

from __future__ import annotations

import threading

from tests.security.conftest import Dyn, js, py, still_serving, tenant
from treadle.core.lifecycle import JobStatus
from treadle.sandbox import Bindings, MemoryKV, SandboxManager

# Tenant A's worker: plants unawaited reads and writes, then reports what came back.
PLANT = """
let stolen = [];
async function handler(input, env) {
  if (input === 'plant') {
    for (let i = 0; i < 20; i++) {
      env.kv.get('secret').then((v) => stolen.push(v), () => {});
      env.kv.put('planted', 'by-a').catch(() => {});
    }
    return 'planted';
  }
  return stolen;
}
"""
VICTIM_JS = "async function handler(input, env) { return await env.kv.get('secret') }"
VICTIM_PY = "def handler(input, env):\n    return env.kv.get('secret')"


def test_unawaited_kv_calls_never_reach_another_tenants_kv() -> None:
    kv = MemoryKV()
    a, b = tenant(), tenant()
    kv.for_tenant(b).put("secret", "b-data")
    with SandboxManager(python_pool_size=1, js_hosts=1, kv_for_tenant=kv.for_tenant) as mgr:
        attacker = js(PLANT, kv=True)
        for mode in ("get", "load"):
            run = mgr.get if mode == "get" else mgr.load
            assert run(attacker, "plant", tenant=a).output == "planted"
            # Tenant B's runs, right after, on the same host: they must only see B's data
            # and nothing may be written into B's kv by A.
            for _ in range(3):
                assert mgr.get(js(VICTIM_JS, kv=True), None, tenant=b).output == "b-data"
                assert mgr.load(py(VICTIM_PY, kv=True), None, tenant=b).output == "b-data"
            assert kv.for_tenant(b).get("planted") is None
            # A's warm instance, if any is left, never received B's value.
            after = mgr.get(attacker, "read", tenant=a)
            assert "b-data" not in (after.output or [])
        # The context that made calls after its run is not the one answering now.
        assert kv.for_tenant(a).get("secret") is None


def test_a_self_restarting_chain_of_calls_does_not_break_later_runs() -> None:
    chain = """
    async function handler(input, env) {
      const again = () => env.kv.get('x').then(again, again);
      for (let i = 0; i < 5; i++) again();
      return 'started';
    }
    """
    with SandboxManager(python_pool_size=0, js_hosts=1) as mgr:
        assert mgr.get(js(chain, kv=True), None, tenant=tenant()).output == "started"
        other = tenant()
        for i in range(5):
            spec = js("async function handler(i, env) { await env.kv.put('k', 'v'); return i }",
                      kv=True)
            assert mgr.get(spec, i, tenant=other).output == i
            assert mgr.load(spec, i, tenant=other).output == i
        still_serving(mgr)


def test_bindings_come_from_the_run_not_the_connection() -> None:
    """Each run's calls go to the bindings passed with that run, even on a warm host."""
    first, second = MemoryKV(), MemoryKV()
    first.for_tenant("t").put("who", "first")
    second.for_tenant("t").put("who", "second")
    spec = js("async function handler(i, env) { return await env.kv.get('who') }", kv=True)
    with SandboxManager(python_pool_size=0, js_hosts=1) as mgr:
        one = mgr.get(spec, None, tenant="t", bindings=Bindings(kv=first.for_tenant("t")))
        two = mgr.get(spec, None, tenant="t", bindings=Bindings(kv=second.for_tenant("t")))
    assert (one.output, two.output) == ("first", "second")


def test_python_threads_calling_after_their_run_are_refused_and_the_instance_dropped(
    manager: SandboxManager,
) -> None:
    kv = MemoryKV()
    t = tenant()
    code = """
import threading, time
calls = []
def handler(input, env):
    if input == 'plant':
        def late():
            time.sleep(0.2)
            for _ in range(50):
                try:
                    env.kv.put('late', 'yes')
                    calls.append('ok')
                except Exception as exc:
                    calls.append(type(exc).__name__)
        threading.Thread(target=late, daemon=True).start()
        return 'planted'
    return calls
"""
    spec = py(code, kv=True)
    bindings = Bindings(kv=kv.for_tenant(t))
    assert manager.get(spec, "plant", tenant=t, bindings=bindings).output == "planted"
    again = manager.get(spec, "read", tenant=t, bindings=bindings)
    assert again.reused is False  # the instance with a thread left was discarded
    assert again.output == []
    assert kv.for_tenant(t).get("late") is None


def test_js_run_on_the_registry_cannot_write_into_another_tenants_kv(dyn: Dyn) -> None:
    """The same attack through ``app.dynamic_workers`` and the store-backed kv (two tenants)."""
    a, b = "tenant-a", "tenant-b"
    victim = dyn.workers.register(
        "async function handler(i, env) { await env.kv.put('mine', 'b'); "
        "return await env.kv.get('mine') }", "javascript", {"timeout": 5}, kv=True, tenant=b)
    attacker = dyn.workers.register(PLANT, "javascript", {"timeout": 5}, kv=True, tenant=a)
    planted = dyn.finished(dyn.workers.run(attacker.id, "plant", mode="get", tenant=a).id)
    assert planted.result == "planted"
    for _ in range(3):
        job = dyn.finished(dyn.workers.run(victim.id, None, mode="get", tenant=b).id)
        assert job.status is JobStatus.SUCCEEDED and job.result == "b"
    read = dyn.finished(dyn.workers.run(attacker.id, "read", mode="get", tenant=a).id)
    assert "b" not in (read.result or [])
    repo_kv = dyn.workers.executor.repo.kv_for_tenant(b)
    assert repo_kv.get("planted") is None


def test_concurrent_runs_of_two_tenants_keep_their_own_bindings(manager: SandboxManager) -> None:
    kv = MemoryKV()
    spec = js("async function handler(i, env) { await env.kv.put('k', i);"
              " return await env.kv.get('k') }", kv=True)
    errors: list[str] = []

    def loop(name: str) -> None:
        b = Bindings(kv=kv.for_tenant(name))
        for i in range(15):
            out = manager.get(spec, name + str(i), tenant=name, bindings=b).output
            if out != name + str(i):
                errors.append(f"{name} got {out}")

    threads = [threading.Thread(target=loop, args=(tenant(),)) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
