"""The drain and pickup job every system runs (issue 13): append one line to a file.

The line holds the job's number, the time it was enqueued (0 in a drain) and the time the
job's code started, so every system is measured the same way, from the file itself.
Imported by each peer's app and by Treadle's (``bench/apps/append_tasks.py``).
"""

from __future__ import annotations

import time


def append_line(path: str, i: int, enqueued: float) -> None:
    started = time.time()
    with open(path, "a") as f:
        f.write(f"{i} {enqueued!r} {started!r}\n")


def read_lines(path: str) -> list[tuple[int, float, float]]:
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out.append((int(parts[0]), float(parts[1]), float(parts[2])))
    return out


def count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
