"""load vs get, ids, limits, bindings and console capture, against real sandboxes."""

from __future__ import annotations

import threading

import pytest

from treadle.core.errors import InvalidInput, Permanent, ResourceExhausted
from treadle.egress import EgressPolicy
from treadle.sandbox import (
    Bindings,
    InvalidLimits,
    Limits,
    MemoryKV,
    SandboxManager,
    WorkerSpec,
    url_allowed,
    worker_id,
)

LIMITS = Limits(timeout=3.0, cpu_seconds=3.0, memory_mb=128)
COUNTER = {
    "javascript": "let n = 0; function handler() { n += 1; return n }",
    "python": "n = 0\ndef handler(i, env):\n    global n\n    n += 1\n    return n",
}
LANGS = ("javascript", "python")


def spec(lang: str, code: str, **kw: object) -> WorkerSpec:
    kw.setdefault("limits", LIMITS)
    return WorkerSpec(code=code, language=lang, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("lang", LANGS)
def test_load_never_reuses_get_does(manager: SandboxManager, lang: str) -> None:
    s = spec(lang, COUNTER[lang])
    loads = [manager.load(s, None, tenant="sem") for _ in range(3)]
    assert [r.output for r in loads] == [1, 1, 1]
    assert all(r.mode == "load" and not r.reused for r in loads)
    gets = [manager.get(s, None, tenant="sem") for _ in range(3)]
    assert [r.output for r in gets] == [1, 2, 3]
    assert [r.reused for r in gets] == [False, True, True]
    assert manager.get(s, None, tenant="other").output == 1


@pytest.mark.parametrize("lang", LANGS)
def test_get_recovers_after_a_crash(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "let n = 0; function handler(i) { if (i) for(;;){}; return ++n }",
        "python": "n = 0\ndef handler(i, env):\n    global n\n    while i:\n        pass\n"
        "    n += 1\n    return n",
    }[lang]
    s = spec(lang, code, limits=Limits(timeout=0.5))
    assert manager.get(s, 0, tenant="crash").output == 1
    assert manager.get(s, 0, tenant="crash").output == 2
    with pytest.raises(Exception):  # noqa: B017 - a Timeout; the instance is dropped
        manager.get(s, 1, tenant="crash")
    again = manager.get(s, 0, tenant="crash")
    assert again.output == 1 and not again.reused


def test_worker_id_is_a_content_hash() -> None:
    a = WorkerSpec(code="function handler(){}", language="javascript")
    assert worker_id(a) == worker_id(WorkerSpec(code="function handler(){}", language="javascript"))
    assert worker_id(a).startswith("dw_") and len(worker_id(a)) == 27
    others = [
        WorkerSpec(code="function handler(){ }", language="javascript"),
        WorkerSpec(code="function handler(){}", language="python"),
        WorkerSpec(code="function handler(){}", language="javascript", limits=Limits(timeout=1)),
        WorkerSpec(code="function handler(){}", language="javascript", kv=True),
        WorkerSpec(code="function handler(){}", language="javascript", fetch_allow=("a.b",)),
        WorkerSpec(code="function handler(){}", language="javascript", allow_wasm=True),
    ]
    assert len({worker_id(o) for o in others} | {worker_id(a)}) == len(others) + 1


def test_limits_are_validated() -> None:
    for bad in (
        {"timeout": 0},
        {"memory_mb": 1},
        {"cpu_seconds": -1},
        {"max_host_calls": 1.5},
        {"timeout": float("nan")},
        {"memory_mb": True},
        {"nope": 1},
    ):
        with pytest.raises(InvalidLimits):
            Limits.from_dict(bad)
    assert isinstance(InvalidLimits("x"), ValueError) and isinstance(
        InvalidLimits("x"), InvalidInput
    )
    with pytest.raises(InvalidInput):
        WorkerSpec(code="x", language="ruby")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        WorkerSpec(code="  ", language="python")


@pytest.mark.parametrize("lang", LANGS)
def test_non_json_input_is_invalid(manager: SandboxManager, lang: str) -> None:
    with pytest.raises(InvalidInput):
        manager.load(spec(lang, COUNTER[lang]), {"x": {1, 2}}, tenant="t")
    with pytest.raises(InvalidInput):
        manager.load(spec(lang, COUNTER[lang]), float("nan"), tenant="t")


@pytest.mark.parametrize("lang", LANGS)
def test_console_output_is_captured(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "async function handler(i, env) { console.log('hello', {a: 1});"
        " console.error('oops'); env.log('via env'); return 1 }",
        "python": "import sys\nasync def handler(i, env):\n    print('hello', {'a': 1})\n"
        "    print('oops', file=sys.stderr)\n    env.log('via env')\n    return 1",
    }[lang]
    result = manager.load(spec(lang, code), None, tenant="t")
    assert result.output == 1
    assert result.logs[0].startswith("hello") and result.logs[1:] == ["oops", "via env"]
    assert result.start_ms <= result.duration_ms


@pytest.mark.parametrize("lang", LANGS)
def test_output_and_log_limits(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "function handler(i) { console.log('z'.repeat(i.log));"
        " return 'o'.repeat(i.out) }",
        "python": "def handler(i, env):\n    print('z' * i['log'])\n    return 'o' * i['out']",
    }[lang]
    lim = Limits(timeout=3, max_output_bytes=1000, max_log_bytes=1000)
    s = spec(lang, code, limits=lim)
    assert manager.load(s, {"log": 10, "out": 10}, tenant="t").output == "o" * 10
    with pytest.raises(ResourceExhausted):
        manager.load(s, {"log": 10, "out": 5000}, tenant="t")
    with pytest.raises(ResourceExhausted):
        manager.load(s, {"log": 5000, "out": 10}, tenant="t")


@pytest.mark.parametrize("lang", LANGS)
def test_cpu_limit(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "function handler() { for(;;){} }",
        "python": "def handler(i, env):\n    while True:\n        pass",
    }[lang]
    s = spec(lang, code, limits=Limits(timeout=10, cpu_seconds=0.5))
    with pytest.raises(ResourceExhausted):
        manager.load(s, None, tenant="t")


@pytest.mark.parametrize("lang", LANGS)
def test_memory_limit(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "function handler(i) { const a = []; for (let k = 0; k < i; k++)"
        " a.push(new Array(1 << 20).fill(k + 0.5)); return a.length }",
        "python": "def handler(i, env):\n    a = [bytearray(1 << 20) for _ in range(i * 8)]\n"
        "    return len(a) // 8",
    }[lang]
    s = spec(lang, code, limits=Limits(timeout=5, memory_mb=64))
    assert manager.load(s, 2, tenant="t").output == 2
    with pytest.raises(ResourceExhausted):
        manager.load(s, 40, tenant="t")


@pytest.mark.parametrize("lang", LANGS)
def test_kv_is_scoped_to_tenant(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "async function handler(i, env) { const old = await env.kv.get('k');"
        " await env.kv.put('k', i); return old }",
        "python": "def handler(i, env):\n    old = env.kv.get('k')\n    env.kv.put('k', i)\n"
        "    return old",
    }[lang]
    s = spec(lang, code, kv=True)
    assert manager.load(s, "a1", tenant=f"kv-a-{lang}").output is None
    assert manager.load(s, "a2", tenant=f"kv-a-{lang}").output == "a1"
    assert manager.load(s, "b1", tenant=f"kv-b-{lang}").output is None
    # Without the binding there is no env.kv at all.
    with pytest.raises(Permanent):
        manager.load(spec(lang, code), "x", tenant="t")
    # A caller-supplied store is used as-is.
    store = MemoryKV().for_tenant("own")
    store.put("k", "mine")
    assert manager.load(s, "x", tenant="t", bindings=Bindings(kv=store)).output == "mine"


@pytest.mark.parametrize("lang", LANGS)
def test_host_call_limit(manager: SandboxManager, lang: str) -> None:
    code = {
        "javascript": "async function handler(i, env) { for (let k = 0; k < i; k++)"
        " { try { await env.kv.get('k') } catch (e) {} } return i }",
        "python": "def handler(i, env):\n    for _ in range(i):\n        try:\n"
        "            env.kv.get('k')\n        except Exception:\n            pass\n    return i",
    }[lang]
    s = spec(lang, code, kv=True, limits=Limits(timeout=5, max_host_calls=5))
    result = manager.load(s, 5, tenant="t")
    assert result.output == 5 and result.host_calls == 5
    with pytest.raises(ResourceExhausted):
        manager.load(s, 6, tenant="t")  # even though the code swallowed the error


@pytest.mark.parametrize("lang", LANGS)
def test_fetch(manager: SandboxManager, lang: str, http_url: str) -> None:
    code = {
        "javascript": "async function handler(url, env) { if (!env.fetch) return 'no fetch';"
        " const r = await env.fetch(url); return [r.status, await r.json()] }",
        "python": "def handler(url, env):\n    if not hasattr(env, 'fetch'):\n"
        "        return 'no fetch'\n    r = env.fetch(url)\n"
        "    import json\n    return [r['status'], json.loads(r['body'])]",
    }[lang]
    assert manager.load(spec(lang, code), http_url, tenant="t").output == "no fetch"
    allowed = spec(lang, code, fetch_allow=(http_url + "/ok",))
    # The server is on loopback: refused unless the egress policy allows it (ADR 0305).
    with pytest.raises(Permanent, match="allow-list"):
        manager.load(allowed, http_url + "/ok/x", tenant="t")
    loopback = Bindings(egress=EgressPolicy.parse("127.0.0.1/32"))
    out = manager.load(allowed, http_url + "/ok/x", tenant="t", bindings=loopback).output
    assert out == [200, {"hello": "from the host"}]
    with pytest.raises(Permanent, match="allow-list"):
        manager.load(allowed, http_url + "/secret", tenant="t", bindings=loopback)
    with pytest.raises(Permanent, match="allow-list"):
        manager.load(allowed, "file:///etc/passwd", tenant="t", bindings=loopback)


def test_url_allow_list() -> None:
    allow = ("api.example.com", "http://127.0.0.1:8000/v1/")
    assert url_allowed("https://api.example.com/x", allow)
    assert url_allowed("http://127.0.0.1:8000/v1/jobs", allow)
    assert not url_allowed("http://127.0.0.1:8000/v2/jobs", allow)
    assert not url_allowed("https://api.example.com.evil.net/", allow)
    assert not url_allowed("https://user@api.example.com/", allow)
    assert not url_allowed("ftp://api.example.com/", allow)


def test_concurrent_runs_from_threads(manager: SandboxManager) -> None:
    results: list[object] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            lang = LANGS[k % 2]
            code = {
                "javascript": "function handler(i) { return i * 2 }",
                "python": "def handler(i, env):\n    return i * 2",
            }[lang]
            run = manager.get if k % 3 == 0 else manager.load
            results.append(run(spec(lang, code), k, tenant=f"c{k % 2}").output)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(results) == [k * 2 for k in range(12)]  # type: ignore[type-var]


def test_get_cache_is_bounded() -> None:
    with SandboxManager(python_pool_size=1, get_cache_capacity=2) as mgr:
        s = [spec("python", f"def handler(i, env):\n    return {k}") for k in range(3)]
        for k in range(3):
            assert mgr.get(s[k], None, tenant="lru").output == k
        assert not mgr.get(s[0], None, tenant="lru").reused  # evicted
        assert mgr.get(s[2], None, tenant="lru").reused
