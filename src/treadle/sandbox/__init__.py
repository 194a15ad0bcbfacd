"""Dynamic workers: user-submitted JavaScript and Python run in real sandboxes.

JavaScript runs in V8 isolates (mini-racer, the ``sandbox`` extra) inside sandbox host
processes; Python runs in a bubblewrap'd interpreter with rlimits and a seccomp filter.
``load`` runs code in a fresh sandbox, ``get`` in a warm instance cached by
``(tenant, worker_id)``. See docs/adr/0101-sandbox-*.md.

User code shape::

    // JavaScript (a classic script: no ES modules, no import/export, no require)
    async function handler(input, env) {
      console.log("hello");                 // captured into RunResult.logs
      await env.kv.put("k", "v");           // only with WorkerSpec(kv=True)
      const r = await env.fetch("https://api.example.com/x");  // only if allow-listed
      return {ok: true};                    // must be JSON
    }

    # Python
    def handler(input, env):                # or: async def handler(input, env)
        print("hello")                      # captured into RunResult.logs
        env.kv.put("k", "v")                # only with WorkerSpec(kv=True); sync calls
        r = env.fetch("https://api.example.com/x")  # -> {"status", "headers", "body"}
        return {"ok": True}

Example::

    from treadle.sandbox import Limits, SandboxManager, WorkerSpec

    with SandboxManager() as sandboxes:
        spec = WorkerSpec(code=src, language="python", limits=Limits(timeout=2))
        result = sandboxes.load(spec, {"x": 1}, tenant="acme")

The module imports without mini-racer; running JavaScript without it raises
``MissingExtra("sandbox", "mini-racer")``.
"""

from __future__ import annotations

from treadle.sandbox.bindings import (
    Bindings,
    HostCallError,
    HostCallLimit,
    KVStore,
    MemoryKV,
    url_allowed,
)
from treadle.sandbox.limits import InvalidLimits, Limits
from treadle.sandbox.manager import SandboxManager
from treadle.sandbox.process import BwrapMissing
from treadle.sandbox.spec import Language, Mode, RunResult, WorkerSpec, worker_id

__all__ = [
    "Bindings",
    "BwrapMissing",
    "HostCallError",
    "HostCallLimit",
    "InvalidLimits",
    "KVStore",
    "Language",
    "Limits",
    "MemoryKV",
    "Mode",
    "RunResult",
    "SandboxManager",
    "WorkerSpec",
    "url_allowed",
    "worker_id",
]
