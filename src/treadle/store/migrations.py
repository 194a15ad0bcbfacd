"""Applying numbered migrations, and refusing a schema newer than the code.

Two kinds of track share this bookkeeping: the core schema (``treadle_migrations``) and
each job-kind plug-in's own (``treadle_plugin_migrations``, keyed by plug-in name), so a
plug-in's package owns its tables' history and numbers it from 1 on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import LiteralString

from treadle.core.errors import ConfigurationError, SchemaTooNew
from treadle.store.queries import load_migrations

Migration = tuple[int, str, LiteralString]


class MigrationRunner:
    """Backend-neutral bookkeeping; the backend runs one script atomically."""

    def __init__(
        self,
        package: str,
        run_script: Callable[[LiteralString, int, str], None],
        applied: Callable[[], list[int]],
        *,
        what: str = "database schema",
    ) -> None:
        self.migrations: list[Migration] = load_migrations(package)
        self._run = run_script
        self._applied = applied
        self.what = what

    @property
    def latest(self) -> int:
        return self.migrations[-1][0] if self.migrations else 0

    def migrate(self) -> list[int]:
        """Apply what is missing, in order; returns the versions applied now."""
        self.check(allow_behind=True)
        done = set(self._applied())
        applied_now = []
        for version, name, sql in self.migrations:
            if version not in done:
                self._run(sql, version, name)
                applied_now.append(version)
        return applied_now

    def check(self, *, allow_behind: bool = False) -> None:
        applied = self._applied()
        newest = max(applied, default=0)
        if newest > self.latest:
            raise SchemaTooNew(
                f"{self.what} is at version {newest} but this Treadle knows only up to "
                f"{self.latest}: upgrade Treadle before using this database",
                detail={"database": newest, "code": self.latest},
            )
        # A gap counts too: migrations numbered by separate changes may land out of order.
        missing = {v for v, _, _ in self.migrations} - set(applied)
        if not allow_behind and missing:
            raise ConfigurationError(
                f"{self.what} is at version {newest}, Treadle needs {self.latest}: "
                "run `treadle migrate`",
                detail={"database": newest, "code": self.latest},
            )


def plugin_migrations_package(sql_package: str, backend: str) -> str:
    """``<sql_package>.<backend>.migrations``, checked to exist (a clear error if not)."""
    package = f"{sql_package}.{backend}.migrations"
    try:
        resources.files(package)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"plug-in SQL package {sql_package!r} has no {backend}/migrations folder "
            "(it needs an __init__.py)"
        ) from exc
    return package
