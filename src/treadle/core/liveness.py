"""Is a worker's process still alive? Process identity on one host (ADR 0018).

A pid alone is not an identity: the kernel reuses pids. A process is named by its pid
*and* its start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) *and* the
boot it started in (``/proc/sys/kernel/random/boot_id``). A recorded process is dead
when its pid is gone, is a zombie, or now names another process.

Only Linux exposes this without a dependency; elsewhere liveness is unknown (``None``)
and a dead worker's jobs wait for their leases, as before.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    start: str  # "<boot id>:<start ticks>"


@cache
def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start ticks) of a live pid, or None when there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may itself contain ") ".
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def current() -> ProcessIdentity | None:
    """This process's identity, or None where it cannot be read (not Linux)."""
    boot = _boot_id()
    if boot is None:
        return None
    pid = os.getpid()
    st = _stat(pid)
    return None if st is None else ProcessIdentity(socket.gethostname(), pid, f"{boot}:{st[1]}")


def is_alive(host: str | None, pid: int | None, start: str | None) -> bool | None:
    """True/False for a process recorded on this host; None when it cannot be judged
    (another host, nothing recorded, no ``/proc``) — then only its leases decide."""
    if host is None or pid is None or start is None or host != socket.gethostname():
        return None
    boot = _boot_id()
    if boot is None:
        return None
    recorded_boot, _, ticks = start.partition(":")
    if recorded_boot != boot:
        return False  # the machine rebooted since: every process of then is gone
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False  # gone, or a zombie nobody has reaped yet: it runs no code
    return st[1] == ticks  # the same pid with another start time is another process


__all__ = ["ProcessIdentity", "current", "is_alive"]
