"""Spawning sandbox processes: the bwrap command line and process-group killing."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from treadle.core.errors import TreadleError
from treadle.sandbox import procstat, seccomp

NOBODY = 65534


class BwrapMissing(TreadleError):
    """bubblewrap is not installed (run scripts/deps/bubblewrap.sh)."""


@cache
def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise BwrapMissing("bwrap not found: install bubblewrap (scripts/deps/bubblewrap.sh)")
    return path


@cache
def python_prefix() -> str:
    """The base interpreter's prefix (a venv's python is only a symlink into it)."""
    return os.path.realpath(sys.base_prefix)


@cache
def python_binary() -> str:
    version = sysconfig.get_python_version()
    candidate = os.path.join(python_prefix(), "bin", f"python{version}")
    return candidate if os.path.exists(candidate) else os.path.realpath(sys.executable)


def bwrap_argv(*, tmp_bytes: int, ro_binds: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """bwrap arguments for a sandbox: nothing of the host but the interpreter and libs.

    The prefix is bound at its own path (pyenv builds carry an absolute rpath to it); the
    parent directories bwrap creates for it are empty. /root of the host is never bound.
    """
    prefix = python_prefix()
    argv = [
        bwrap_path(),
        "--unshare-all",  # user, pid, net, ipc, uts, cgroup namespaces; no network at all
        "--die-with-parent",
        "--new-session",  # no TIOCSTI into our terminal
        # The sandboxed program itself is PID 1: no bwrap init inside the namespace whose
        # /proc/1/{environ,mem} user code could read or write (ADR 0102).
        # When PID 1 dies the kernel kills whatever else is left in the namespace.
        "--as-pid-1",
        "--uid", str(NOBODY), "--gid", str(NOBODY),
        "--cap-drop", "ALL",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin",
        "--setenv", "LANG", "C.UTF-8",
        "--ro-bind", "/usr/lib", "/usr/lib",
        "--symlink", "usr/lib", "/lib",
    ]  # fmt: skip
    if os.path.isdir("/usr/lib64"):
        argv += ["--ro-bind", "/usr/lib64", "/usr/lib64", "--symlink", "usr/lib64", "/lib64"]
    argv += ["--ro-bind", prefix, prefix]
    for src, dst in ro_binds:
        argv += ["--ro-bind", src, dst]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        # /dev is an uncapped tmpfs (and /dev/shm a directory on it): read-only. Device
        # nodes such as /dev/null stay writable (a read-only mount does not stop those).
        "--remount-ro", "/dev",
        "--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp",
        "--remount-ro", "/",  # the root tmpfs has no size cap: nothing may write there
        "--chdir", "/tmp",
        "--seccomp", "{SECCOMP_FD}",  # replaced per spawn by a fresh memfd
    ]  # fmt: skip
    return argv


# bwrap's --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that
# started bwrap ends, not the process. Sandboxes are spawned from this one long-lived
# thread, so a host started on behalf of a short-lived caller thread lives on.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="treadle-sandbox-spawn")


def spawn(argv: list[str], boot_source: str, boot_args: list[str]) -> subprocess.Popen[bytes]:
    """Start ``python -I -S -B -c boot_source boot_args...`` inside bwrap.

    The seccomp program travels in a fresh memfd: bwrap consumes it while starting.
    bwrap itself starts from an empty environment (``env={}``): ``--clearenv`` only
    clears the sandboxed program's, and nothing of the worker's (``TREADLE_ADMIN_KEY``,
    database URLs) may exist in any process of the sandbox. Only the two pipes and the
    memfd are inherited (``close_fds``).
    """
    return _SPAWNER.submit(_spawn, argv, boot_source, boot_args).result()


def _spawn(argv: list[str], boot_source: str, boot_args: list[str]) -> subprocess.Popen[bytes]:
    fd = seccomp.filter_fd(seccomp.bwrap_filter())
    try:
        full = [
            *bwrap_argv_with_fd(argv, fd),
            python_binary(), "-I", "-S", "-B", "-c", boot_source, *boot_args,
        ]  # fmt: skip
        return subprocess.Popen(
            full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(fd,),
            env={},
            start_new_session=True,  # our own process group: one killpg ends everything
            close_fds=True,
        )
    finally:
        os.close(fd)


def bwrap_argv_with_fd(argv: list[str], fd: int) -> list[str]:
    return [str(fd) if a == "{SECCOMP_FD}" else a for a in argv]


def kill(proc: subprocess.Popen[bytes], wait: bool = False) -> None:
    """SIGKILL the sandbox: bwrap and every process below it.

    The sandboxed program runs in its own session (``--new-session``), so it is killed
    through a pidfd (no pid-reuse race) as well as by bwrap's parent-death signal; it is
    PID 1 of its namespace, so nothing it could have left behind survives it. SIGKILL
    cannot be caught: the tree is doomed when this returns. Tearing a namespace down
    takes milliseconds, so reaping happens on a background thread unless ``wait``.
    """
    pidfds: list[int] = []
    if proc.poll() is None:
        for pid in procstat.descendants(proc.pid)[1:]:
            with contextlib.suppress(OSError):
                pidfds.append(os.pidfd_open(pid))
    for fd in pidfds:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # bwrap is our child, unreaped: pid is ours
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if wait:
        _reap(proc, pidfds)
    else:
        _REAPER.submit(_reap, proc, pidfds)


_REAPER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="treadle-sandbox-reap")


def _reap(proc: subprocess.Popen[bytes], pidfds: list[int]) -> None:
    """Wait for bwrap and the processes below it to be gone, then release the pidfds."""
    try:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # A pidfd turns readable when its process has exited.
        waiting, give_up = set(pidfds), time.monotonic() + 5.0
        while waiting and time.monotonic() < give_up:
            ready, _, _ = select.select(list(waiting), [], [], give_up - time.monotonic())
            waiting -= set(ready)
    finally:
        for fd in pidfds:
            os.close(fd)
