"""``env.emit(kind, data)`` in dynamic workers (ADR 0020): items reach the job's durable
stream through a host call that belongs to the run (ADR 0102) and passes the stream's own
checks (ADR 0011). Real sandboxes, real workers, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dynamic.conftest import Dyn
from treadle.core.lifecycle import JobStatus
from treadle.sandbox.bindings import EMIT_MAX_CHARS
from treadle.streams.repo import StreamRepo

LANGS = ("javascript", "python")
ROOM = {"timeout": 20, "cpu_seconds": 20, "memory_mb": 512}
SANDBOX = Path(__file__).resolve().parents[3] / "src/treadle/sandbox"


def _emitted(dyn: Dyn, job_id: int) -> list[tuple[int, str, Any]]:
    items = StreamRepo(dyn.app.store).read(job_id, 0, 1000)
    return [(i.attempt, i.kind, i.data) for i in items if i.kind != "log"]


EMITS = {
    "javascript": "async function handler(input, env) {\n"
                  "  for (let i = 0; i < input.n; i++) await env.emit('token', {i, t: 'é✓'});\n"
                  "  await env.emit('done', null);\n  return input.n;\n}",
    "python": "def handler(input, env):\n"
              "    for i in range(input['n']):\n"
              "        env.emit('token', {'i': i, 't': 'é✓'})\n"
              "    env.emit('done')\n    return input['n']",
}


@pytest.mark.parametrize("lang", LANGS)
def test_emitted_items_reach_the_jobs_stream(dyn: Dyn, lang: str) -> None:
    w = dyn.workers.register(EMITS[lang], lang, ROOM, tenant=dyn.tenant)
    # More items than max_host_calls (50 by default): emits are not subrequests.
    job = dyn.finished(dyn.workers.run(w.id, {"n": 300}, tenant=dyn.tenant).id)
    assert job.status is JobStatus.SUCCEEDED and job.result == 300, job.error
    assert _emitted(dyn, job.id) == [
        *[(1, "token", {"i": i, "t": "é✓"}) for i in range(300)], (1, "done", None)]


# Each hostile emit is caught by the handler, which returns the messages; one good emit
# at the end shows the run (and a warm instance) carries on.
HOSTILE = {
    "javascript": r"""
async function handler(input, env) {
  let deep = []; for (let i = 0; i < 10000; i++) deep = [deep];
  const tries = {
    huge: () => env.emit('x', 'x'.repeat(50 * 1024 * 1024)),
    over_item_cap: () => env.emit('x', 'é'.repeat(40000)),
    deep: () => env.emit('x', deep),
    surrogate: () => env.emit('x', {s: 'a\ud800b'}),
    nul: () => env.emit('x', 'a\u0000b'),
    reserved: () => env.emit('log', 'pretending'),
    bad_kind: () => env.emit('', 1),
  };
  const out = {};
  for (const [name, f] of Object.entries(tries)) {
    try { await f(); out[name] = 'accepted'; } catch (e) { out[name] = String(e.message); }
  }
  await env.emit('ok', {still: 'working'});
  return out;
}""",
    "python": r"""
def handler(input, env):
    deep = []
    for _ in range(10000):
        deep = [deep]
    tries = {
        'huge': lambda: env.emit('x', 'x' * (50 * 1024 * 1024)),
        'over_item_cap': lambda: env.emit('x', 'é' * 40000),
        'deep': lambda: env.emit('x', deep),
        'surrogate': lambda: env.emit('x', {'s': 'a\ud800b'}),
        'nul': lambda: env.emit('x', 'a\x00b'),
        'reserved': lambda: env.emit('log', 'pretending'),
        'bad_kind': lambda: env.emit('', 1),
        'nan': lambda: env.emit('x', float('nan')),
    }
    out = {}
    for name, f in tries.items():
        try:
            f()
            out[name] = 'accepted'
        except Exception as e:
            out[name] = str(e)
    env.emit('ok', {'still': 'working'})
    return out
""",
}
EXPECTED = {
    "huge": f"over {EMIT_MAX_CHARS} characters",
    "over_item_cap": "a stream item may be at most",
    "deep": "deep",
    "surrogate": "surrogate",
    "nul": "NUL",
    "reserved": "reserved",
    "bad_kind": "kind must be a name",
    "nan": "not JSON",
}


@pytest.mark.parametrize("lang", LANGS)
def test_hostile_emits_are_refused_with_a_message(dyn: Dyn, lang: str) -> None:
    w = dyn.workers.register(HOSTILE[lang], lang, ROOM, tenant=dyn.tenant)
    job = dyn.finished(dyn.workers.run(w.id, None, tenant=dyn.tenant).id, timeout=60)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert isinstance(job.result, dict) and set(job.result) <= set(EXPECTED)
    for name, message in job.result.items():
        assert EXPECTED[name].lower() in message.lower(), (name, message)
    assert _emitted(dyn, job.id) == [(1, "ok", {"still": "working"})]  # nothing else got in


LATE = {
    # A timer fires after the handler returned: its emit runs when the run is over, so
    # the host refuses it (and drops the context).
    "javascript": "let runs = 0;\nasync function handler(input, env) {\n  runs += 1;\n"
                  "  await env.emit('mine', runs);\n"
                  "  setTimeout(() => env.emit('late', runs), 1);\n  return runs;\n}",
    # A thread outlives the handler; its call is refused inside the sandbox (only the
    # handler's thread, during its run, may call the host).
    "python": "import threading, time\nruns = 0\nerrors = []\n"
              "def late(env, n):\n    time.sleep(0.2)\n    try:\n"
              "        env.emit('late', n)\n    except Exception as e:\n"
              "        errors.append(str(e))\n"
              "def handler(input, env):\n    global runs\n    runs += 1\n"
              "    env.emit('mine', runs)\n"
              "    threading.Thread(target=late, args=(env, runs)).start()\n    return runs",
}


@pytest.mark.parametrize("lang", LANGS)
def test_an_emit_after_the_run_ended_reaches_no_stream(dyn: Dyn, lang: str) -> None:
    # Timers exist in JavaScript only with allow_wasm (mini-racer builds them on Atomics).
    w = dyn.workers.register(LATE[lang], lang, ROOM, tenant=dyn.tenant,
                             allow_wasm=lang == "javascript")
    first = dyn.finished(dyn.workers.run(w.id, None, mode="get", tenant=dyn.tenant).id)
    second = dyn.finished(dyn.workers.run(w.id, None, mode="get", tenant=dyn.tenant).id)
    assert first.status is second.status is JobStatus.SUCCEEDED, (first.error, second.error)
    # Each run's stream holds its own awaited item only: nothing late, nothing of the
    # other run (the warm instance that had leftovers was not reused: runs restarts).
    assert _emitted(dyn, first.id) == [(1, "mine", 1)]
    assert _emitted(dyn, second.id) == [(1, "mine", second.result)]
    assert second.result == 1


def test_the_boots_use_the_hosts_emit_cap() -> None:
    for boot in ("_pyboot.py", "_jsboot.py"):
        text = (SANDBOX / boot).read_text()
        caps = {int(n) for n in re.findall(r"EMIT_MAX\s*=\s*(\d+)", text)}
        assert caps == {EMIT_MAX_CHARS}, boot
