"""Process identity (ADR 0018): a pid that is gone, a zombie or reused is not alive."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from treadle.core import liveness

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux only")


def test_this_process_is_alive() -> None:
    me = liveness.current()
    assert me is not None and me.pid == os.getpid() and me.host == socket.gethostname()
    assert liveness.is_alive(me.host, me.pid, me.start) is True


def test_a_reused_pid_is_another_process() -> None:
    me = liveness.current()
    assert me is not None
    boot, _, ticks = me.start.partition(":")
    assert liveness.is_alive(me.host, me.pid, f"{boot}:{int(ticks) + 1}") is False


def test_another_boot_means_dead() -> None:
    me = liveness.current()
    assert me is not None
    ticks = me.start.partition(":")[2]
    assert liveness.is_alive(me.host, me.pid, f"not-this-boot:{ticks}") is False


def test_a_killed_child_is_dead_even_before_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = liveness.current()
        assert me is not None
        with open(f"/proc/{child.pid}/stat") as f:
            stat = f.read()
        ticks = stat[stat.rindex(")") + 2:].split()[19]
        boot = me.start.partition(":")[0]
        assert liveness.is_alive(me.host, child.pid, f"{boot}:{ticks}") is True
        os.kill(child.pid, signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # a zombie now
        assert liveness.is_alive(me.host, child.pid, f"{boot}:{ticks}") is False
    finally:
        child.kill()
        child.wait()
    assert liveness.is_alive(me.host, child.pid, f"{boot}:{ticks}") is False  # gone


def test_unknown_for_another_host_or_nothing_recorded() -> None:
    assert liveness.is_alive("some-other-host", 1, "x:1") is None
    assert liveness.is_alive(socket.gethostname(), None, None) is None
