"""Hostile programs in both languages: each gets a classified error, the manager survives."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from treadle.core.errors import (
    InvalidInput,
    InvalidOutput,
    Permanent,
    ResourceExhausted,
    SandboxViolation,
    Timeout,
    TreadleError,
)
from treadle.sandbox import Limits, SandboxManager, WorkerSpec

FAST = Limits(timeout=1.0, cpu_seconds=1.0, memory_mb=128)
JS_OK = "function handler(input) { return {ok: input.n + 1} }"
PY_OK = "def handler(input, env):\n    return {'ok': input['n'] + 1}"


def js(code: str, limits: Limits = FAST, **kw: object) -> WorkerSpec:
    return WorkerSpec(code=code, language="javascript", limits=limits, **kw)  # type: ignore[arg-type]


def py(code: str, limits: Limits = FAST, **kw: object) -> WorkerSpec:
    return WorkerSpec(code=code, language="python", limits=limits, **kw)  # type: ignore[arg-type]


def still_serving(manager: SandboxManager) -> None:
    """After every hostile run both languages must still answer correctly."""
    assert manager.load(js(JS_OK), {"n": 1}, tenant="t").output == {"ok": 2}
    assert manager.load(py(PY_OK), {"n": 1}, tenant="t").output == {"ok": 2}


def expect(
    manager: SandboxManager, spec: WorkerSpec, error: type[TreadleError], mode: str = "load"
) -> TreadleError:
    run = manager.load if mode == "load" else manager.get
    with pytest.raises(error) as info:
        run(spec, {"n": 1}, tenant="hostile")
    still_serving(manager)
    return info.value


JS_CASES = {
    "infinite_loop": ("function handler() { while (true) {} }", Timeout),
    "async_infinite_loop": ("async function handler() { await 1; for (;;) {} }", Timeout),
    "deep_recursion": (
        "function handler() { const f = (n) => f(n + 1) + 1; return f(0) }",
        ResourceExhausted,
    ),
    "heap_bomb": (
        "function handler() { const a = []; for (;;) a.push(new Array(1e5).fill(1.5)) }",
        ResourceExhausted,
    ),
    "arraybuffer_bomb_big": (
        "function handler() { const a = []; for (;;) a.push(new ArrayBuffer(256 << 20)) }",
        ResourceExhausted,
    ),
    "arraybuffer_bomb_touched": (
        "function handler() { const a = [];"
        " for (;;) { const b = new Uint8Array(32 << 20); b.fill(7); a.push(b) } }",
        ResourceExhausted,
    ),
    "huge_output": ("function handler() { return 'x'.repeat(2 << 20) }", ResourceExhausted),
    "huge_logs": (
        "function handler() { for (;;) console.log('y'.repeat(1000)) }",
        ResourceExhausted,
    ),
    "syntax_error": ("function handler( {", InvalidInput),
    "no_handler": ("const x = 1", InvalidInput),
    "bigint_output": ("function handler() { return 10n }", InvalidOutput),
    "own_exception": ("function handler() { throw new TypeError('mine') }", Permanent),
    "es_module": ("export function handler() { return 1 }", InvalidInput),
}


@pytest.mark.parametrize("name", sorted(JS_CASES))
def test_js_hostile(manager: SandboxManager, name: str) -> None:
    code, error = JS_CASES[name]
    # Memory bombs get time to hit the memory limit rather than the wall clock.
    limits = Limits(timeout=5.0, cpu_seconds=5.0, memory_mb=128) if "bomb" in name else FAST
    expect(manager, js(code, limits), error)


PY_CASES = {
    "infinite_loop": ("def handler(i, env):\n    while True:\n        pass", Timeout),
    "deep_recursion": (
        "def handler(i, env):\n    def f(n):\n        return f(n + 1) + 1\n    return f(0)",
        ResourceExhausted,
    ),
    "heap_bomb": (
        "def handler(i, env):\n    a = []\n    while True:\n        a.append(' ' * 10**7)",
        ResourceExhausted,
    ),
    "fork_bomb": (
        "import os\ndef handler(i, env):\n    while True:\n        os.fork()",
        SandboxViolation,
    ),
    "file_bomb": (
        "def handler(i, env):\n    with open('/tmp/bomb', 'wb') as f:\n"
        "        while True:\n            f.write(b'x' * 10**6)",
        ResourceExhausted,
    ),
    "many_files_bomb": (
        "def handler(i, env):\n    n = 0\n    while True:\n"
        "        n += 1\n        with open(f'/tmp/f{n}', 'wb') as f:\n"
        "            f.write(b'x' * 10**6)",
        ResourceExhausted,
    ),
    "socket": (
        "import socket\ndef handler(i, env):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.connect(('1.1.1.1', 80))",
        SandboxViolation,
    ),
    "unix_socket": (
        "import socket\ndef handler(i, env):\n    socket.socket(socket.AF_UNIX)",
        SandboxViolation,
    ),
    "os_system": ("import os\ndef handler(i, env):\n    return os.system('id')", SandboxViolation),
    "subprocess": (
        "import subprocess\ndef handler(i, env):\n"
        "    return subprocess.run(['/bin/true']).returncode",
        SandboxViolation,
    ),
    "execve": (
        "import os, sys\ndef handler(i, env):\n    os.execv(sys.executable, [sys.executable])",
        SandboxViolation,
    ),
    "ctypes_syscall_socket": (
        "import ctypes\ndef handler(i, env):\n    return ctypes.CDLL(None).syscall(41, 2, 1, 0)",
        SandboxViolation,
    ),
    "ctypes_ptrace": (
        "import ctypes\ndef handler(i, env):\n    return ctypes.CDLL(None).ptrace(0, 0, 0, 0)",
        SandboxViolation,
    ),
    "ctypes_crash": ("import ctypes\ndef handler(i, env):\n    ctypes.string_at(0)", Permanent),
    "write_outside": (
        "def handler(i, env):\n    open('/usr/lib/pwned', 'w').write('x')",
        SandboxViolation,
    ),
    "write_root": ("def handler(i, env):\n    open('/pwned', 'w').write('x')", SandboxViolation),
    "huge_output": ("def handler(i, env):\n    return 'x' * (2 << 20)", ResourceExhausted),
    "huge_logs": (
        "def handler(i, env):\n    while True:\n        print('y' * 1000)",
        ResourceExhausted,
    ),
    "syntax_error": ("def handler(:", InvalidInput),
    "no_handler": ("x = 1", InvalidInput),
    "non_json_output": ("def handler(i, env):\n    return {1, 2}", InvalidOutput),
    "own_exception": ("def handler(i, env):\n    raise ValueError('mine')", Permanent),
    "exit": ("import os\ndef handler(i, env):\n    os._exit(3)", Permanent),
}


@pytest.mark.parametrize("name", sorted(PY_CASES))
def test_py_hostile(manager: SandboxManager, name: str) -> None:
    code, error = PY_CASES[name]
    expect(manager, py(code), error)


def test_user_exception_has_message_and_stack(manager: SandboxManager) -> None:
    err = expect(manager, js("function handler() { throw new TypeError('mine') }"), Permanent)
    assert "mine" in err.message and "handler" in err.detail["stack"]
    err = expect(manager, py("def handler(i, env):\n    raise ValueError('mine')"), Permanent)
    assert "ValueError: mine" in err.message
    assert "<worker>" in err.detail["stack"] and "_run_handler" not in err.detail["stack"]


def test_py_cannot_read_host_files(manager: SandboxManager) -> None:
    project_file = str(Path(__file__).resolve().parents[3] / "pyproject.toml")
    assert Path(project_file).is_file()  # readable here, so the sandbox check means something
    code = (
        "import os\ndef handler(i, env):\n    out = {}\n"
        f"    for p in ['/etc/passwd', '/etc/shadow', {project_file!r},"
        " '/root/.bash_history', '/proc/1/environ']:\n"
        "        try:\n            out[p] = open(p).read()[:50]\n"
        "        except OSError as e:\n            out[p] = type(e).__name__\n"
        "    out['root'] = sorted(os.listdir('/'))\n    out['uid'] = os.getuid()\n"
        "    return out"
    )
    out = manager.load(py(code), {}, tenant="t").output
    assert out["/etc/passwd"] == "FileNotFoundError"
    assert out[project_file] == "FileNotFoundError"
    assert out["/etc/shadow"] == "FileNotFoundError"
    assert "root:" not in str(out)
    assert out["uid"] == 65534
    assert "work" not in out["root"] and "etc" not in out["root"]


def test_js_has_no_host_access(manager: SandboxManager) -> None:
    code = (
        "function handler() { return [typeof require, typeof process, typeof fetch,"
        " typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics] }"
    )
    assert manager.load(js(code), {}, tenant="t").output == ["undefined"] * 6
    wasm = manager.load(js(code, allow_wasm=True), {}, tenant="t").output
    assert wasm[3:] == ["object", "function", "object"]


def test_py_writes_outside_never_reach_host(manager: SandboxManager, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    code = f"def handler(i, env):\n    open({str(target)!r}, 'w').write('x')"
    with pytest.raises(TreadleError):
        manager.load(py(code), {}, tenant="t")
    assert not target.exists()


def test_signals_to_parent_do_not_kill_the_worker(manager: SandboxManager) -> None:
    code = (
        "import os, signal\ndef handler(i, env):\n    sent = []\n"
        "    for pid in (os.getppid(), 1, -1):\n"
        "        try:\n            os.kill(pid, signal.SIGKILL)\n            sent.append(pid)\n"
        "        except OSError as e:\n            sent.append(str(e))\n"
        "    return sent"
    )
    # Killing its own namespace may end the sandbox: a classified error is fine.
    with contextlib.suppress(TreadleError):
        manager.load(py(code), {}, tenant="t")
    os.kill(os.getpid(), 0)  # we are alive
    still_serving(manager)


def test_state_left_behind_is_not_seen_by_next_load(manager: SandboxManager) -> None:
    js_code = (
        "function handler() { const seen = [typeof globalThis.leak, ({}).polluted];"
        " globalThis.leak = 1; Object.prototype.polluted = 'yes'; return seen }"
    )
    for _ in range(3):
        assert manager.load(js(js_code), {}, tenant="t").output == ["undefined", None]
    py_code = (
        "import os, builtins\ndef handler(i, env):\n"
        "    seen = [os.path.exists('/tmp/marker'), hasattr(builtins, 'leak')]\n"
        "    open('/tmp/marker', 'w').write('x')\n    builtins.leak = 1\n    return seen"
    )
    for _ in range(3):
        assert manager.load(py(py_code), {}, tenant="t").output == [False, False]


def test_prototype_pollution_across_tenants_in_get(manager: SandboxManager) -> None:
    code = (
        "function handler(input) { const seen = ({}).polluted ?? ([].includes(1) ? 'B' : null);"
        " if (input.pollute) { Object.prototype.polluted = input.pollute;"
        " Array.prototype.includes = () => true; String.prototype.trim = () => 'owned'; }"
        " return seen }"
    )
    spec = js(code)
    assert manager.get(spec, {"pollute": "A"}, tenant="tenant-a").output is None
    # Tenant A's own warm instance keeps its (polluted) state ...
    assert manager.get(spec, {}, tenant="tenant-a").output == "A"
    # ... tenant B, same worker id, never sees it, nor does a fresh load.
    assert manager.get(spec, {}, tenant="tenant-b").output is None
    assert manager.load(spec, {}, tenant="tenant-a").output is None


def test_py_get_state_is_per_tenant(manager: SandboxManager) -> None:
    code = "COUNT = []\ndef handler(i, env):\n    COUNT.append(1)\n    return len(COUNT)"
    spec = py(code)
    assert [manager.get(spec, {}, tenant="pa").output for _ in range(3)] == [1, 2, 3]
    assert manager.get(spec, {}, tenant="pb").output == 1
