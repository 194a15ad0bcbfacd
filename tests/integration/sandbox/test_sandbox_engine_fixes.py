"""Engine fixes: logs of failed runs are kept; a failing binding never desyncs a sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.core.errors import Permanent, ResourceExhausted, Timeout, TreadleError
from treadle.sandbox import (
    Bindings,
    HostCallError,
    Limits,
    SandboxManager,
    WorkerSpec,
)
from treadle.sandbox.bindings import HostCalls
from treadle.sandbox.channel import Exchange

LIMITS = Limits(timeout=3.0, cpu_seconds=3.0, memory_mb=128)


def spec(lang: str, code: str, **kw: Any) -> WorkerSpec:
    kw.setdefault("limits", LIMITS)
    return WorkerSpec(code=code, language=lang, **kw)  # type: ignore[arg-type]


# -- (a) console output written before a failure travels with the error ---------------


FAILING = {
    "javascript": "function handler(i) { console.log('before', i); throw new Error('boom') }",
    "python": "def handler(i, env):\n    print('before', i)\n    raise ValueError('boom')",
}


@pytest.mark.parametrize("lang", ["javascript", "python"])
@pytest.mark.parametrize("mode", ["load", "get"])
def test_failed_run_carries_its_logs(manager: SandboxManager, lang: str, mode: str) -> None:
    run = manager.load if mode == "load" else manager.get
    with pytest.raises(Permanent) as info:
        run(spec(lang, FAILING[lang]), 7, tenant="logs")
    assert "boom" in info.value.message
    assert getattr(info.value, "logs", None) == ["before 7"]


def test_python_logs_before_a_timeout_are_kept(manager: SandboxManager) -> None:
    code = "import sys\ndef handler(i, env):\n    print('started')\n    while True:\n        pass"
    with pytest.raises(Timeout) as info:
        manager.load(spec("python", code, limits=Limits(timeout=0.5)), None, tenant="logs")
    assert getattr(info.value, "logs", None) == ["started"]


def test_python_logs_before_an_output_overrun_are_kept(manager: SandboxManager) -> None:
    code = "def handler(i, env):\n    print('made it')\n    return 'x' * 5000"
    limits = Limits(timeout=3.0, max_output_bytes=100)
    with pytest.raises(ResourceExhausted) as info:
        manager.load(spec("python", code, limits=limits), None, tenant="logs")
    assert "made it" in (getattr(info.value, "logs", None) or [])


# -- (b) a binding raising something else than HostCallError ----------------------------


class BrokenKV:
    """A KV backend with a bug: ``get`` raises, ``put`` returns a non-JSON value."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        raise RuntimeError("database exploded (secret dsn=postgres://u:p@h/db)")

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        raise KeyError(key)


BROKEN_BINDING = {
    "javascript": """
let n = 0;
async function handler(i, env) {
  n += 1;
  let err = null;
  try { await env.kv.get('k') } catch (e) { err = String(e.message) }
  await env.kv.put('k', 'v' + n);
  return {n, err};
}
""",
    "python": """
n = 0
def handler(i, env):
    global n
    n += 1
    err = None
    try:
        env.kv.get('k')
    except Exception as e:
        err = str(e)
    env.kv.put('k', 'v' + str(n))
    return {'n': n, 'err': err}
""",
}


@pytest.mark.parametrize("lang", ["javascript", "python"])
def test_a_crashing_binding_is_an_error_reply_and_get_stays_in_step(
    manager: SandboxManager, lang: str
) -> None:
    kv = BrokenKV()
    s = spec(lang, BROKEN_BINDING[lang], kv=True)
    outs = [
        manager.get(s, None, tenant="broken-kv", bindings=Bindings(kv=kv)) for _ in range(3)
    ]
    assert [o.output["n"] for o in outs] == [1, 2, 3]
    assert [o.reused for o in outs] == [False, True, True]
    for o in outs:
        err = o.output["err"]
        assert err and "kv.get" in err and "failed in the host" in err
        assert "secret" not in err  # the binding's own message stays in the host
    assert kv.data == {"k": "v3"}
    # The JavaScript host (shared by every run) still serves an unrelated load.
    ok = manager.load(spec(lang, FAILING[lang].replace("throw new Error('boom')", "return 1")
                          if lang == "javascript" else "def handler(i, env):\n    return 1"),
                      None, tenant="broken-kv")
    assert ok.output == 1


class _Spy:
    def __init__(self, value: Any = None, exc: BaseException | None = None) -> None:
        self.value = value
        self.exc = exc

    def handle(self, op: Any, args: Any) -> Any:
        if self.exc is not None:
            raise self.exc
        return self.value


@pytest.mark.parametrize(
    ("calls", "ok", "fragment"),
    [
        (_Spy(value={"a": 1}), True, None),
        (_Spy(exc=HostCallError("refused: nope")), False, "refused: nope"),
        (_Spy(exc=ZeroDivisionError("x")), False, "failed in the host"),
        (_Spy(value=object()), False, "failed in the host"),  # not JSON
        (_Spy(value=float("nan")), False, "failed in the host"),
    ],
)
def test_reply_to_never_raises(calls: _Spy, ok: bool, fragment: str | None) -> None:
    ex = Exchange(calls, 1024)  # type: ignore[arg-type]
    reply = ex.reply_to({"t": "call", "id": 9, "run": ex.run_id, "op": "kv.get", "args": ["k"]})
    assert reply["t"] == "reply" and reply["id"] == 9 and reply["ok"] is ok
    if fragment is not None:
        assert fragment in reply["error"]
    assert ex.binding_errors == (1 if fragment == "failed in the host" else 0)


def test_host_call_error_is_exported() -> None:
    import treadle.sandbox as sb

    assert sb.HostCallError is HostCallError
    assert issubclass(sb.HostCallLimit, HostCallError)
    assert not issubclass(HostCallError, TreadleError)
    assert isinstance(HostCalls, type)  # the class that raises it for refused calls
