"""Resident memory and CPU time of a process tree, read from /proc (for watchdogs)."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (bwrap -> bwrap init -> python)."""
    found = [pid]
    i = 0
    while i < len(found):
        current = found[i]
        i += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as fh:
                    found.extend(int(c) for c in fh.read().split())
            except OSError:
                continue
    return found


def usage(pids: list[int]) -> tuple[int, float]:
    """(resident bytes, CPU seconds) summed over ``pids``; vanished processes count 0."""
    rss = 0
    cpu = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        cpu += (int(fields[11]) + int(fields[12])) / _TICK
        rss += int(fields[21]) * _PAGE
    return rss, cpu


def peak_rss(pid: int) -> int | None:
    """The process's peak resident set size (``VmHWM``) in bytes, None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class StatFile:
    """``/proc/PID/stat`` kept open: re-reading an open proc file costs a few
    microseconds, opening it tens (warm runs check it twice per run)."""

    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)

    def threads_and_cpu(self) -> tuple[int, float]:
        """(number of threads, CPU seconds); (0, 0.0) once the process is gone."""
        try:
            stat = os.pread(self.fd, 4096, 0).decode("ascii", "replace")
        except OSError:
            return 0, 0.0
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 18:
            return 0, 0.0
        return int(fields[17]), (int(fields[11]) + int(fields[12])) / _TICK

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
