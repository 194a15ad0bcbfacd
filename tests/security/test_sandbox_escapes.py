"""Attacks beyond the issue's list: each ends in a classified error or does nothing, and
the manager keeps serving other tenants."""

from __future__ import annotations

import pytest

from tests.security.conftest import js, py, still_serving, tenant
from treadle.core.errors import (
    Permanent,
    ResourceExhausted,
    SandboxViolation,
    Timeout,
    TreadleError,
)
from treadle.sandbox import Limits, SandboxManager

PY_KILLED: dict[str, str] = {
    "ptrace_attach_pid1": "import ctypes\nctypes.CDLL(None).ptrace(16, 1, 0, 0)",
    "unix_socket": "import socket\nsocket.socket(socket.AF_UNIX)",
    "inet_socket": "import socket\nsocket.create_connection(('127.0.0.1', 5432))",
    "fork": "import os\nos.fork()",
    "fork_bomb_via_subprocess": "import subprocess\nsubprocess.run(['/usr/bin/true'])",
    "exec": "import os\nos.execv('/usr/bin/true', ['true'])",
    "unshare_user_ns": "import ctypes\nctypes.CDLL(None).unshare(0x10000000)",
    "mount": "import ctypes\nctypes.CDLL(None).mount(b'x', b'/tmp', b'tmpfs', 0, None)",
    "io_uring": "import ctypes\nctypes.CDLL(None).syscall(425, 8, None)",
    "process_vm_readv": "import ctypes\nctypes.CDLL(None).syscall(310, 1, 0, 0, 0, 0, 0)",
    "clear_pdeathsig": "import ctypes\nctypes.CDLL(None).prctl(1, 0, 0, 0, 0)",
    "setns": "import ctypes\nctypes.CDLL(None).syscall(308, 0, 0)",
}


@pytest.mark.parametrize("name", sorted(PY_KILLED))
def test_python_escape_attempts_are_violations(manager: SandboxManager, name: str) -> None:
    body = "\n".join("    " + line for line in PY_KILLED[name].splitlines())
    with pytest.raises(SandboxViolation):
        manager.load(py(f"def handler(input, env):\n{body}\n    return 'escaped'"), None,
                     tenant=tenant())
    still_serving(manager)


PROBES = r"""
import os, signal
def handler(input, env):
    out = {}
    # Signals: there is no other process to signal; kill(-1) reaches nothing outside.
    try:
        os.kill(-1, signal.SIGCONT)
        out['kill_all'] = 'sent'
    except OSError as exc:
        out['kill_all'] = exc.errno
    # A symlink in /tmp to a host path resolves inside the sandbox's own tree.
    os.symlink('/proc/1/environ', '/tmp/env')
    out['symlink'] = open('/tmp/env', 'rb').read().decode()
    os.symlink('/etc/passwd', '/tmp/passwd')
    out['etc'] = os.path.exists('/tmp/passwd')
    out['home'] = [p for p in ('/home', '/work', '/etc', '/var') if os.path.exists(p)]
    # The interpreter's prefix is bound at its own path (under /root here): only that.
    out['root'] = os.listdir('/root') if os.path.exists('/root') else []
    # Raising a hard rlimit is refused.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard * 2, hard * 2))
        out['rlimit'] = 'raised'
    except (ValueError, OSError):
        out['rlimit'] = 'refused'
    out['uid'] = os.getuid()
    status = dict(l.split(':', 1) for l in open('/proc/self/status'))
    out['caps'] = status['CapEff'].strip()
    out['seccomp'] = status['Seccomp'].strip()
    return out
"""


def test_pid_1_cannot_kill_itself_and_the_run_goes_on(manager: SandboxManager) -> None:
    code = ("import os, signal\ndef handler(input, env):\n"
            "    os.kill(1, signal.SIGKILL)\n    os.kill(1, signal.SIGTERM)\n    return 'alive'")
    assert manager.load(py(code), None, tenant=tenant()).output == "alive"


def test_probing_signals_symlinks_rlimits_and_the_file_system(manager: SandboxManager) -> None:
    out = manager.load(py(PROBES), None, tenant=tenant()).output
    assert "TREADLE" not in out["symlink"]
    assert out["etc"] is False and out["home"] == [] and out["root"] in ([], [".pyenv"])
    assert out["rlimit"] == "refused"
    assert out["uid"] == 65534 and int(out["caps"], 16) == 0 and out["seccomp"] == "2"
    still_serving(manager)


PY_BOUNDED: dict[str, tuple[str, type[TreadleError]]] = {
    "busy_loop_in_finally": (
        "    try:\n        raise ValueError('x')\n    finally:\n        while True:\n"
        "            pass", Timeout),
    "thread_bomb": (
        "    import threading, time\n    for _ in range(100000):\n"
        "        threading.Thread(target=time.sleep, args=(60,)).start()",
        TreadleError),
    "fd_exhaustion": ("    fds = [open('/dev/null') for _ in range(100000)]", Permanent),
    "tmp_fill": ("    open('/tmp/x', 'wb').write(b'x' * (200 << 20))", ResourceExhausted),
    "huge_argv_like_string": ("    return 'x' * (8 << 20)", ResourceExhausted),
    "exit_from_handler": ("    import os\n    os._exit(0)", Permanent),
}


@pytest.mark.parametrize("name", sorted(PY_BOUNDED))
def test_python_resource_abuse_is_bounded(manager: SandboxManager, name: str) -> None:
    body, error = PY_BOUNDED[name]
    limits = Limits(timeout=2.0, cpu_seconds=2.0, memory_mb=128)
    with pytest.raises(error):
        manager.load(py(f"def handler(input, env):\n{body}\n", limits), None, tenant=tenant())
    still_serving(manager)


JS_CASES: dict[str, tuple[str, type[TreadleError] | None]] = {
    "atomics_wait": ("function handler() { return typeof Atomics }", None),
    "webassembly": ("function handler() { return typeof WebAssembly }", None),
    "shared_array_buffer": ("function handler() { return typeof SharedArrayBuffer }", None),
    "finalization_registry": ("function handler() { return typeof FinalizationRegistry }",
                              None),
    "set_timeout_without_wasm": ("function handler() { setTimeout(() => 1, 10) }", Permanent),
    "busy_loop_in_finally": ("function handler() { try { throw 1 } finally { for (;;) {} } }",
                             Timeout),
    "microtask_storm": ("function handler() { const f = () => Promise.resolve().then(f);"
                        " f(); return 1 }", TreadleError),  # timeout or memory, by speed
    "redefine_json": ("function handler() { JSON.stringify = () => '{\"ok\":1}'; return 2 }",
                      None),
    "function_constructor": ("function handler() { return Function('return this')() ==="
                             " globalThis }", None),
    "eval_host_glue": ("function handler() { return typeof __timer_manager }", None),
}


@pytest.mark.parametrize("name", sorted(JS_CASES))
def test_javascript_tricks(manager: SandboxManager, name: str) -> None:
    code, error = JS_CASES[name]
    if error is None:
        out = manager.load(js(code), None, tenant=tenant()).output
        if name in ("atomics_wait", "webassembly", "shared_array_buffer",
                    "finalization_registry"):
            assert out == "undefined"
        if name == "redefine_json":
            assert out == 2  # the prelude kept its own JSON
    else:
        with pytest.raises(error):
            manager.load(js(code), None, tenant=tenant())
    still_serving(manager)
