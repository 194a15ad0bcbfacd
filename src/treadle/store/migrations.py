"""Applying numbered migrations, and refusing a schema newer than the code."""

from __future__ import annotations

from collections.abc import Callable

from treadle.core.errors import ConfigurationError, SchemaTooNew
from treadle.store.queries import load_migrations


class MigrationRunner:
    """Backend-neutral bookkeeping; the backend runs one script atomically."""

    def __init__(
        self,
        package: str,
        run_script: Callable[[str, int, str], None],
        applied: Callable[[], list[int]],
    ) -> None:
        self.migrations = load_migrations(package)
        self._run = run_script
        self._applied = applied

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
                f"database schema is at version {newest} but this Treadle knows only up to "
                f"{self.latest}: upgrade Treadle before using this database",
                detail={"database": newest, "code": self.latest},
            )
        if not allow_behind and newest < self.latest:
            raise ConfigurationError(
                f"database schema is at version {newest}, Treadle needs {self.latest}: "
                "run `treadle migrate`",
                detail={"database": newest, "code": self.latest},
            )
