"""``env.emit`` as an attacker uses it (ADRs 0020, 0102, 0011): one tenant's sandboxed code,
in JavaScript and Python, tries to put items on another tenant's job stream (forged host
call frames, a run id guessed or kept from an earlier run, calls after its run ended), to
flood, or to send items the stream cannot hold. The victim's stream receives only its
own items, and the worker goes on serving both tenants."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import Dyn
from treadle.core.lifecycle import JobStatus
from treadle.streams.repo import StreamRepo

ROOM = {"timeout": 20, "cpu_seconds": 20, "memory_mb": 512}

VICTIM = {
    "javascript": "async function handler(input, env) {\n"
                  "  for (let i = 0; i < 50; i++) await env.emit('victim', i);\n"
                  "  return 'victim';\n}",
    "python": "def handler(input, env):\n"
              "    for i in range(50):\n        env.emit('victim', i)\n    return 'victim'",
}

# Python code reaches the boot's own frame writer through the function's globals and
# forges one host call: another run's id (guessed, none, the victim's job id) or an
# argument list naming another job. The host refuses it (a forged run id ends the run as a
# sandbox violation); nothing reaches any stream.
PY_FORGE = r"""
def handler(input, env):
    g = env.emit.__func__.__globals__
    run = g['_RUN'] if input['run'] == 'own' else input['run']
    g['_send']({'t': 'call', 'run': run, 'op': 'emit', 'args': input['args']})
    return bool(g['_recv']().get('ok'))
"""
FORGED = [
    ("run-1", ["stolen", '"x"']), (None, ["stolen", '"x"']), (1, ["stolen", '"x"']),
    ("victim", ["stolen", '"x"']), ("own", ["stolen", "1", "victim"]), ("own", ["stolen"]),
    ("own", [1, "1"]), ("own", ["stolen", {"job": "victim"}]), ("own", "stolen"),
]


@pytest.mark.parametrize(("run", "args"), FORGED)
def test_forged_host_calls_reach_no_stream(dyn: Dyn, run: Any, args: Any) -> None:
    victim_code = dyn.workers.register(VICTIM["python"], "python", ROOM, tenant="victim")
    attacker = dyn.workers.register(PY_FORGE, "python", ROOM, tenant="attacker")
    victim = dyn.workers.run(victim_code.id, None, tenant="victim")
    swap = {"victim": victim.id}
    forged_args = [swap.get(a, a) if isinstance(a, str) else a for a in args] \
        if isinstance(args, list) else args
    attack = dyn.workers.run(attacker.id, {"run": swap.get(run, run) if isinstance(run, str)
                                           else run, "args": forged_args},
                             mode="get", tenant="attacker")
    v, a = dyn.finished(victim.id, timeout=60), dyn.finished(attack.id, timeout=60)
    assert v.status is JobStatus.SUCCEEDED, v.error
    assert items(dyn, victim.id) == [("victim", i) for i in range(50)]
    if a.status is JobStatus.FAILED:
        assert a.error is not None and a.error.error_class.value == "sandbox_violation", a.error
    else:
        assert a.status is JobStatus.SUCCEEDED and a.result is False, (a.status, a.result)
    assert items(dyn, attack.id) == []
    # The worker (and the warm pool) carries on for both tenants.
    again = dyn.finished(dyn.workers.run(attacker.id, {"run": "own", "args": ["mine", "1"]},
                                         mode="get", tenant="attacker").id, timeout=60)
    assert again.status is JobStatus.SUCCEEDED and again.result is True, again.error
    assert items(dyn, again.id) == [("mine", 1)]


# Through the real env.emit: every reserved or unstorable kind, extra arguments naming
# another job, then a flood past the stream's pending cap.
ATTACK = {
    "python": r"""
def handler(input, env):
    out = []
    for kind in ('log', 'end', 'state', 'progress', 'x' * 300, 'a\x00b', '\ud800'):
        try:
            env.emit(kind, 1)
            out.append(True)
        except Exception:
            out.append(False)
    try:
        env.emit('mine', 1, input['victim_job'])
        out.append(True)
    except Exception:
        out.append(False)
    refused = 0
    for i in range(input['flood']):
        try:
            env.emit('flood', i)
        except Exception:
            refused += 1
    return [out, refused]
""",
    "javascript": r"""
async function handler(input, env) {
  const out = [];
  for (const kind of ['log', 'end', 'state', 'progress', 'x'.repeat(300), 'a\u0000b', '\ud800']) {
    try { await env.emit(kind, 1); out.push(true); } catch (e) { out.push(false); }
  }
  // Extra arguments naming another job are not part of the call: the item is the run's own.
  await env.emit('mine', 1, input.victim_job, {job: input.victim_job});
  // Not awaited one by one: the whole flood is in flight at once.
  const sent = [];
  for (let i = 0; i < input.flood; i++) sent.push(env.emit('flood', i).catch(() => 1));
  const refused = (await Promise.all(sent)).filter((r) => r === 1).length;
  return [out, refused];
}""",
}
FLOOD_ROOM = {"timeout": 60, "cpu_seconds": 60, "memory_mb": 512}
FLOOD = 12_000  # past the stream's pending cap (StreamLimits.max_pending, 10,000)


def items(dyn: Dyn, job_id: int) -> list[tuple[str, Any]]:
    return [(i.kind, i.data) for i in StreamRepo(dyn.app.store).read(job_id, 0, 100_000)
            if i.kind != "log"]


@pytest.mark.parametrize("lang", ["javascript", "python"])
def test_one_tenants_emits_never_reach_another_tenants_stream(dyn: Dyn, lang: str) -> None:
    victim_code = dyn.workers.register(VICTIM[lang], lang, ROOM, tenant="victim")
    attacker = dyn.workers.register(ATTACK[lang], lang, FLOOD_ROOM, tenant="attacker")
    victim = dyn.workers.run(victim_code.id, None, tenant="victim")
    runs = [dyn.workers.run(attacker.id, {"flood": FLOOD, "victim_job": victim.id},
                            mode="get", tenant="attacker") for _ in range(2)]
    done = [dyn.finished(h.id, timeout=90) for h in (victim, *runs)]
    assert done[0].status is JobStatus.SUCCEEDED and done[0].result == "victim", done[0].error
    assert items(dyn, victim.id) == [("victim", i) for i in range(50)]
    for job in done[1:]:
        assert job.status is JobStatus.SUCCEEDED, job.error
        kinds, _refused = job.result
        assert kinds[:7] == [False] * 7, kinds  # reserved and unstorable kinds: refused
        got = items(dyn, job.id)
        assert {kind for kind, _ in got} <= {"flood", "mine", "trimmed"}, got[:5]
        # The stream's caps held (10,000 kept per job; more pending ones dropped).
        assert 0 < len(got) <= 10_001
    # The worker carries on for both tenants.
    again = dyn.finished(dyn.workers.run(victim_code.id, None, tenant="victim").id)
    assert again.status is JobStatus.SUCCEEDED
    assert items(dyn, again.id) == [("victim", i) for i in range(50)]


HEAVY = {
    "javascript": r"""
async function handler(input, env) {
  let deep = []; for (let i = 0; i < 10000; i++) deep = [deep];
  const out = [];
  for (const data of ['x'.repeat(50 * 1024 * 1024), deep, {s: 'a\ud800b'}, 'a\u0000b']) {
    try { await env.emit('x', data); out.push(true); } catch (e) { out.push(false); }
  }
  return out;
}""",
    "python": r"""
def handler(input, env):
    deep = []
    for _ in range(10000):
        deep = [deep]
    g = env.emit.__func__.__globals__
    out = []
    for data in ('x' * (50 * 1024 * 1024), deep, {'s': 'a\ud800b'}, 'a\x00b'):
        try:
            env.emit('x', data)
            out.append(True)
        except Exception:
            out.append(False)
    # Past the boot's own checks: raw frames straight to the host.
    for text in ('"' + 'x' * (1 << 20) + '"', '[' * 10000 + ']' * 10000, '"a\\ud800b"',
                 '"a\\u0000b"', 'NaN', '{"a": 1e999}'):
        g['_send']({'t': 'call', 'run': g['_RUN'], 'op': 'emit', 'args': ['x', text]})
        out.append(bool(g['_recv']().get('ok')))
    return out
""",
}


@pytest.mark.parametrize("lang", ["javascript", "python"])
def test_unstorable_emits_are_refused_even_past_the_boot(dyn: Dyn, lang: str) -> None:
    w = dyn.workers.register(HEAVY[lang], lang, ROOM, tenant="attacker")
    job = dyn.finished(dyn.workers.run(w.id, None, tenant="attacker").id, timeout=90)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert isinstance(job.result, list) and job.result and not any(job.result), job.result
    assert items(dyn, job.id) == []
    ok = dyn.finished(dyn.workers.run(dyn.workers.register(
        VICTIM[lang], lang, ROOM, tenant="victim").id, None, tenant="victim").id)
    assert ok.status is JobStatus.SUCCEEDED
