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


def threads_and_cpu(pid: int) -> tuple[int, float]:
    """(number of threads, CPU seconds) of ``pid`` in one read; (0, 0.0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return 0, 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[17]), (int(fields[11]) + int(fields[12])) / _TICK
