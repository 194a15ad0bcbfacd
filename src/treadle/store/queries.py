"""Named SQL queries kept in ``.sql`` files, one dict per backend.

A file holds blocks introduced by ``-- name: <query_name>``. Queries are
never built from f-strings: a backend may only run what these files hold.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, LiteralString]:
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, LiteralString] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"duplicate query name {name!r} in {package}/{filename}")
        queries[name] = cast(LiteralString, body.strip())
    return queries


def load_migrations(package: str) -> list[tuple[int, str, LiteralString]]:
    """Numbered migrations ``NNNN_name.sql`` in order: (number, name, sql)."""
    found: list[tuple[int, str, LiteralString]] = []
    for entry in resources.files(package).iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            sql = entry.read_text(encoding="utf-8")
            found.append((int(m.group(1)), m.group(2), sql))  # trusted package file
    found.sort()
    numbers = [n for n, _, _ in found]
    # Numbers are unique and ascend; gaps are allowed because parallel changes are
    # assigned numbers up front and may land out of order (the runner applies every
    # missing one, and a schema missing any is "behind").
    if len(set(numbers)) != len(numbers) or any(n < 1 for n in numbers):
        raise ValueError(f"migrations in {package} must have unique numbers >= 1: {numbers}")
    return found
