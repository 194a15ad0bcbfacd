"""The log lines of one attempt, as they wait for the flusher.

Lines are made storable as they arrive (ADR 0006): lone surrogates and NUL become
U+FFFD and a line longer than ``MAX_LINE_CHARS`` is cut with a visible marker. An
attempt keeps at most ``MAX_LINES`` lines between two writes; beyond that, lines are
counted and one line says how many were not stored, so nothing is dropped silently
and a task printing in a loop cannot exhaust the worker's memory.
"""

from __future__ import annotations

import threading

from treadle.core.storable import clean_text

MAX_LINE_CHARS = 16_384
MAX_LINES = 10_000


class AttemptLog:
    """Thread-safe: the task's thread adds, the flusher takes."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._dropped = 0
        self._lock = threading.Lock()
        self.bytes = 0  # UTF-8 bytes of the lines kept (usage accounting, ADR 0022)

    def add(self, line: str) -> None:
        text = clean_text(line if isinstance(line, str) else str(line), MAX_LINE_CHARS)
        with self._lock:
            if len(self._lines) < MAX_LINES:
                self._lines.append(text)
                self.bytes += len(text.encode())
            else:
                self._dropped += 1

    def take(self) -> list[str]:
        """Every pending line (with a note of dropped ones); the log is empty after."""
        with self._lock:
            lines, self._lines = self._lines, []
            dropped, self._dropped = self._dropped, 0
        if dropped:
            lines.append(f"[{dropped} more log lines of this attempt were not stored: "
                         f"at most {MAX_LINES} lines are kept per attempt]")
        return lines

    def put_back(self, lines: list[str]) -> None:
        """Return lines that could not be written yet, ahead of newer ones."""
        with self._lock:
            self._lines[:0] = lines

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)
