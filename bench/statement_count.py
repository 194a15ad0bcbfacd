"""Counting the statements a process sends to its database (the idle-cost bench and its
test, issue 13): every ``psycopg`` cursor ``execute``/``executemany`` and every statement
a ``sqlite3`` connection runs (its trace callback), grouped by their first words.

Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) and SQLite's
``PRAGMA data_version`` are kept apart: the first ride with a statement, the second is
SQLite's in-memory change check (no file access) that its wake-ups poll.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END")


class StatementCount:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_label: collections.Counter[str] = collections.Counter()
        self.control = 0
        self.change_checks = 0

    def add(self, sql: object) -> None:
        text = sql.decode() if isinstance(sql, bytes) else str(sql)
        words = " ".join(line.strip() for line in text.splitlines()
                         if line.strip() and not line.strip().startswith("--"))
        head = words.upper()
        with self._lock:
            if head.startswith(_CONTROL):
                self.control += 1
            elif head.startswith("PRAGMA DATA_VERSION"):
                self.change_checks += 1
            else:
                self.by_label[words[:70]] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_label.values())

    def snapshot(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self.by_label)


@contextlib.contextmanager
def counting_statements() -> Iterator[StatementCount]:
    """Count statements of every connection opened (SQLite) or used (PostgreSQL) inside."""
    count = StatementCount()
    real_connect = sqlite3.connect
    real_execute = psycopg.Cursor.execute
    real_many = psycopg.Cursor.executemany

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn: sqlite3.Connection = real_connect(*args, **kwargs)
        conn.set_trace_callback(count.add)
        return conn

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        count.add(query.as_string(self) if hasattr(query, "as_string") else query)
        return real_execute(self, query, *args, **kwargs)

    def executemany(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        count.add(query.as_string(self) if hasattr(query, "as_string") else query)
        return real_many(self, query, *args, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
    try:
        yield count
    finally:
        sqlite3.connect = real_connect
        psycopg.Cursor.execute = real_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = real_many  # type: ignore[method-assign]
