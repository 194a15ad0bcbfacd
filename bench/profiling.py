"""Summarise a py-spy 'raw' (collapsed stacks) profile into top-N function tables."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::\d+)?\)$")


def _norm(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (…/to/file.py)': one entry per function."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    parts = Path(m.group("file")).parts
    short = "/".join(parts[-3:]) if len(parts) > 3 else m.group("file")
    return f"{m.group('func')} ({short})"


_IMPORT_MARKERS = ("_find_and_load (", "_call_with_frames_removed (")


def summarise_collapsed(path: Path, top: int = 40) -> str:
    """Top functions by self and inclusive samples; import-time stacks are left out."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    total = 0
    skipped = 0
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        n = int(m.group("count"))
        frames = [_norm(f) for f in m.group("stack").split(";") if f]
        # py-spy may prefix with a process/thread frame; keep them, they are informative.
        if not frames:
            continue
        if any(f.startswith(_IMPORT_MARKERS) for f in frames):
            skipped += n  # start-up imports, not the steady state
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n
    if total == 0:
        return "no samples\n"
    out = [
        f"samples: {total} (plus {skipped} import-time samples at start-up, left out)",
        "",
        f"== top {top} by self time (leaf frame) ==",
    ]
    for func, n in self_c.most_common(top):
        out.append(f"{100.0 * n / total:6.2f}%  {n:7d}  {func}")
    out += ["", f"== top {top} by inclusive time (frame anywhere on the stack) =="]
    for func, n in incl_c.most_common(top):
        out.append(f"{100.0 * n / total:6.2f}%  {n:7d}  {func}")
    return "\n".join(out) + "\n"
