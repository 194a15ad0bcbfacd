"""ADR 0102: no secret reaches a sandbox; PID 1 is the run itself.

Before the fix, PID 1 inside the namespace was bwrap's init: it kept the worker's whole
environment (readable in /proc/1/environ) and its memory was writable (/proc/1/mem),
outside the second seccomp stage and the rlimits.
"""

from __future__ import annotations

import json
import os
import select
import threading

import pytest
from typer.testing import CliRunner

from tests.e2e.api.conftest import ADMIN_KEY, Api
from tests.security.conftest import Dyn, js, leaked, py, still_serving, tenant
from treadle.cli import app as cli
from treadle.core.errors import SandboxViolation, Timeout
from treadle.core.lifecycle import JobStatus
from treadle.sandbox import Limits, SandboxManager, procstat, worker_id
from treadle.sandbox.py_host import PyInstance

# Everything a Python run can read about the processes and files it can see.
SNOOP = r'''
import os

def _read(path, limit=1 << 16):
    try:
        with open(path, 'rb') as fh:
            # NUL separators become spaces: a result holding NUL cannot be stored
            # (ADR 0006); the secrets, if any, would still show.
            return fh.read(limit).decode('utf-8', 'replace').replace('\0', ' ')
    except Exception as exc:
        return 'ERR ' + type(exc).__name__

def handler(input, env):
    out = {'pid': os.getpid(), 'env': dict(os.environ), 'procs': {}}
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        info = {k: _read(f'/proc/{p}/{k}') for k in ('environ', 'cmdline', 'status')}
        fds = {}
        try:
            for fd in os.listdir(f'/proc/{p}/fd'):
                try:
                    fds[fd] = os.readlink(f'/proc/{p}/fd/{fd}')
                except OSError:
                    pass
        except OSError:
            pass
        info['fds'] = fds
        try:
            with open(f'/proc/{p}/mem', 'r+b'):
                info['mem'] = 'read-write'
        except OSError as exc:
            info['mem'] = 'ERR ' + type(exc).__name__
        out['procs'][p] = info
    for d in ('/tmp', '/dev', '/dev/shm', '/', '/proc/self/cwd'):
        try:
            out[d] = sorted(os.listdir(d))
        except OSError:
            pass
    return out
'''


def test_python_run_reads_no_secret_from_any_process_it_can_see(
    fresh_manager: SandboxManager,
) -> None:
    out = fresh_manager.load(py(SNOOP), None, tenant=tenant()).output
    assert leaked(out) == []
    # The run is PID 1 of its namespace and the only process there: no bwrap init whose
    # memory could be written (class 2), nothing else to read or signal.
    assert out["pid"] == 1 and list(out["procs"]) == ["1"]
    assert set(out["env"]) <= {"PATH", "LANG", "PWD"}
    # Inherited descriptors: /dev/null and the two protocol pipes, nothing of the worker.
    fds = out["procs"]["1"]["fds"]
    assert all(t == "/dev/null" or t.startswith("pipe:") or t.startswith("/proc/")
               for t in fds.values()), fds


PY_ONE = "def handler(i, env):\n    return 1"


def test_get_instances_and_js_hosts_hold_no_secret_in_any_process(
    fresh_manager: SandboxManager,
) -> None:
    """From the outside: bwrap itself and every process below it start with an (almost)
    empty environment, whatever the worker's environment holds."""
    t = tenant()
    fresh_manager.get(py(PY_ONE), None, tenant=t)
    fresh_manager.get(js("function handler() { return 1 }"), None, tenant=t)
    roots = [host.proc.pid for host in fresh_manager._js.started()]
    warm = fresh_manager._py_cache.get((t, worker_id(py(PY_ONE))))
    assert warm is not None
    roots.append(warm.inst.proc.pid)
    for root in roots:
        tree = procstat.descendants(root)
        assert len(tree) == 2, tree  # bwrap outside, the sandboxed program inside
        for pid in tree:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read().decode()
            assert leaked(environ) == [], (pid, environ[:200])
        with open(f"/proc/{tree[0]}/environ", "rb") as fh:
            assert fh.read() == b""  # bwrap itself: empty
        # Every thread of the sandboxed program runs under both seccomp stages.
        inner = tree[-1]
        for tid in os.listdir(f"/proc/{inner}/task"):
            with open(f"/proc/{inner}/task/{tid}/status") as fh:
                status = dict(line.split(":", 1) for line in fh)
            assert status["Seccomp_filters"].strip() == "2", (inner, tid)
            assert status["NoNewPrivs"].strip() == "1"


def test_clearing_the_parent_death_signal_is_a_violation(manager: SandboxManager) -> None:
    """An orphan that outlives a dead worker starts by clearing PR_SET_PDEATHSIG."""
    code = ("import ctypes\ndef handler(input, env):\n"
            "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n    return 'survived'")
    for run in (manager.load, manager.get):
        with pytest.raises(SandboxViolation):
            run(py(code), None, tenant=tenant())
    still_serving(manager)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_nothing_of_a_killed_run_survives(
    fresh_manager: SandboxManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    ready = PyInstance.wait_ready

    def record(self: PyInstance, deadline: float | None = None) -> None:
        ready(self, deadline)
        if threading.current_thread() is threading.main_thread():  # not other pools' refills
            seen.extend(p for p in procstat.descendants(self.proc.pid) if p not in seen)

    monkeypatch.setattr(PyInstance, "wait_ready", record)
    code = ("import threading, time\ndef handler(input, env):\n"
            "    threading.Thread(target=time.sleep, args=(600,)).start()\n"
            "    time.sleep(600)")
    with pytest.raises(Timeout):
        fresh_manager.load(py(code, Limits(timeout=0.5)), None, tenant=tenant())
    assert len(seen) == 2
    # SIGKILLed by then; a namespace takes a few milliseconds to tear down.
    for pid in seen:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([fd], [], [], 5.0)  # readable once the process has exited
        finally:
            os.close(fd)
    assert [pid for pid in seen if _alive(pid)] == []


def test_secrets_do_not_reach_code_run_over_http(dapi: Api) -> None:
    """POST /v1/run: the stolen admin key would have worked on this very API."""
    with dapi.client("a") as a:
        r = a.post("/v1/run", json={"language": "python", "code": SNOOP, "input": None,
                                    "limits": {"timeout": 5}})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "succeeded", job
        assert leaked(job) == []
        assert ADMIN_KEY not in json.dumps(job)


def test_secrets_do_not_reach_code_run_from_the_cli(dyn: Dyn, sqlite_url: str) -> None:
    """`treadle dynamic run` with the database URL in the environment, as users do."""
    w = dyn.workers.register(SNOOP, "python", {"timeout": 5}, tenant="default")
    env = {"COLUMNS": "200", "NO_COLOR": "1", "TREADLE_DATABASE_URL": sqlite_url}
    result = CliRunner().invoke(cli, ["dynamic", "run", w.id, "--input", "null",
                                      "--wait-seconds", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pid"] == 1
    assert leaked(result.output) == []
    [job] = dyn.app.list_jobs()
    assert job.status is JobStatus.SUCCEEDED and leaked(job.result) == []
