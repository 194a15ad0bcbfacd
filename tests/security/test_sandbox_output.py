"""ADR 0102: hostile output always ends in a classified error.

Before the fix a deeply nested result escaped the manager as an unclassified
``RecursionError`` and a forged result frame carrying ``NaN`` was accepted.
Results that cannot be stored are ``invalid_output`` (ADR 0006).
"""

from __future__ import annotations

import pytest

from tests.e2e.api.conftest import Api
from tests.security.conftest import Dyn, js, py, still_serving, tenant
from treadle.core.errors import InvalidOutput, ResourceExhausted, SandboxViolation, Timeout
from treadle.core.lifecycle import JobStatus
from treadle.sandbox import SandboxManager

DEEP_JS = "function handler() { let v = 0; for (let i = 0; i < 5000; i++) v = [v]; return v }"
# A Python handler that writes its own result frame to the pipe, then waits to be killed.
FORGE = """
import json, os, sys, time
def handler(input, env):
    boot = sys.modules['__main__']
    body = json.dumps({{"t": "result", "ok": True, "output": {output}}}).encode()
    os.write(boot._OUT, len(body).to_bytes(4, 'big') + body)
    time.sleep(30)
"""
FORGED = {
    "nan": '"NaN"',
    "infinity": '"-Infinity"',
    "overflowing_float": '"1e999"',
    "deep": '"[" * 100000 + "]" * 100000',
    "deep_object": '"{\\"a\\":" * 5000 + "1" + "}" * 5000',
}


@pytest.mark.parametrize("mode", ["load", "get"])
def test_deeply_nested_js_result_is_classified(manager: SandboxManager, mode: str) -> None:
    run = manager.get if mode == "get" else manager.load
    with pytest.raises(InvalidOutput):
        run(js(DEEP_JS), None, tenant=tenant())
    still_serving(manager)


def test_result_nested_just_within_the_limit_is_accepted(manager: SandboxManager) -> None:
    code = "function handler() { let v = 0; for (let i = 0; i < 99; i++) v = [v]; return v }"
    out = manager.load(js(code), None, tenant=tenant()).output
    depth = 0
    while isinstance(out, list):
        out, depth = out[0], depth + 1
    assert depth == 99


def test_deeply_nested_python_result_is_classified(manager: SandboxManager) -> None:
    code = ("import sys\nsys.setrecursionlimit(20000)\ndef handler(i, env):\n"
            "    v = 0\n    for _ in range(900):\n        v = [v]\n    return v")
    with pytest.raises(InvalidOutput):
        manager.load(py(code), None, tenant=tenant())


@pytest.mark.parametrize("name", sorted(FORGED))
def test_forged_result_frames_are_classified(manager: SandboxManager, name: str) -> None:
    spec = py(FORGE.format(output=FORGED[name]))
    for run in (manager.load, manager.get):
        with pytest.raises((InvalidOutput, SandboxViolation)):
            run(spec, None, tenant=tenant())
    still_serving(manager)


def test_forged_deep_frame_is_a_protocol_violation(manager: SandboxManager) -> None:
    code = """
import os, sys, time
def handler(input, env):
    boot = sys.modules['__main__']
    body = b'{"t": "log", "line": ' + b'[' * 200000 + b']' * 200000 + b'}'
    os.write(boot._OUT, len(body).to_bytes(4, 'big') + body)
    time.sleep(30)
"""
    with pytest.raises(SandboxViolation):
        manager.load(py(code), None, tenant=tenant())
    still_serving(manager)


JS_TRICKS: dict[str, tuple[str, type[Exception]]] = {
    "throwing_getter": ("function handler() { return {get x() { throw new Error('no') }} }",
                        InvalidOutput),
    "proxy_ownkeys_throws": ("function handler() { return new Proxy({}, {ownKeys() {"
                             " throw new Error('no') }}) }", InvalidOutput),
    "getter_loops": ("function handler() { return {get x() { for (;;) {} }} }", Timeout),
    "tojson_loops": ("function handler() { return {toJSON() { for (;;) {} }} }", Timeout),
    "tojson_returns_function": ("function handler() { return {toJSON() { return () => 1 }} }",
                                InvalidOutput),
    "cyclic": ("function handler() { const a = {}; a.a = a; return a }", InvalidOutput),
    "huge_string_via_tojson": ("function handler() { return {toJSON() {"
                               " return 'x'.repeat(3 << 20) }} }", ResourceExhausted),
}


@pytest.mark.parametrize("name", sorted(JS_TRICKS))
def test_proxy_getter_and_tojson_tricks_on_results(manager: SandboxManager, name: str) -> None:
    code, error = JS_TRICKS[name]
    with pytest.raises(error):
        manager.load(js(code), None, tenant=tenant())
    still_serving(manager)


def test_tojson_side_effects_do_not_outlive_the_run(manager: SandboxManager) -> None:
    """A host call started from toJSON (after the handler returned) belongs to that run;
    the context that still has it in flight is not reused."""
    code = ("let runs = 0; function handler(i, env) { runs++; return {toJSON() {"
            " env.kv.put('late', String(runs)); return runs }} }")
    t = tenant()
    first = manager.get(js(code, kv=True), None, tenant=t)
    second = manager.get(js(code, kv=True), None, tenant=t)
    assert (first.output, second.output) == (1, 1)
    assert second.reused is False


def test_nested_result_through_the_registry_fails_the_job_and_the_worker_carries_on(
    dyn: Dyn,
) -> None:
    deep = dyn.workers.register(DEEP_JS, "javascript", {"timeout": 5})
    job = dyn.finished(dyn.workers.run(deep.id, None).id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_class.value == "invalid_output"
    ok = dyn.workers.register("function handler(i) { return i }", "javascript")
    assert dyn.finished(dyn.workers.run(ok.id, 7).id).result == 7


def test_hostile_output_over_http_fails_the_run_and_the_api_carries_on(dapi: Api) -> None:
    """POST /v1/run with a forged NaN frame and with a 900-deep result."""
    with dapi.client("a") as a:
        for code in (FORGE.format(output=FORGED["nan"]),
                     "def handler(i, env):\n    v = 0\n    for _ in range(900):\n"
                     "        v = [v]\n    return v"):
            r = a.post("/v1/run", json={"language": "python", "code": code, "input": None,
                                        "limits": {"timeout": 5}})
            assert r.status_code == 200, r.text
            job = r.json()
            assert job["status"] == "failed"
            assert job["error"]["class"] in ("invalid_output", "sandbox_violation"), job
        ok = a.post("/v1/run", json={"language": "javascript", "input": 2,
                                     "code": "function handler(i) { return i * 21 }"})
        assert ok.json()["result"] == 42
