"""Schema of the SQLite store: its migrations and those of plug-ins (``store/migrations.py``).

Each script runs in its own ``BEGIN IMMEDIATE`` transaction with the row recording it;
a script that rebuilds a referenced table runs with foreign keys off and checked before
COMMIT. Separate from ``store.py`` because it runs once at start-up, not on any job's
path, and it keeps that module short. A mixin of ``SQLiteStore``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from treadle.core.errors import ConfigurationError
from treadle.store.migrations import MigrationRunner, plugin_migrations_package
from treadle.store.queries import load_queries
from treadle.store.sqlite.errors import translated

Q = load_queries("treadle.store.sqlite")
_FK_OFF_MARK = "-- treadle: foreign_keys=off"


class SchemaOps:
    _conn: Callable[[], sqlite3.Connection]
    _busy_retry: Callable[[Callable[[], Any]], Any]
    _sync_for: Callable[..., None]
    _read: Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]

    def _migrations(self) -> MigrationRunner:
        return MigrationRunner("treadle.store.sqlite.migrations", self._run_script, self._applied)

    def _run_script(self, sql: str, version: int, name: str, plugin: str | None = None) -> None:
        conn = self._conn()
        # A script that rebuilds a referenced table asks for foreign keys off (SQLite's
        # documented procedure): the pragma is a no-op inside a transaction, so it is
        # set before BEGIN, and the keys are checked before COMMIT instead.
        fk_off = sql.startswith(_FK_OFF_MARK)
        if fk_off:
            conn.execute("PRAGMA foreign_keys=OFF")
        try:
            # executescript cannot take parameters; open the transaction in the script
            # and record the migration with a bound statement before committing.
            self._sync_for(conn, relaxed=False)  # a claim may have run on it before
            self._busy_retry(lambda: conn.executescript("BEGIN IMMEDIATE;\n" + sql))
            try:
                if fk_off and conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                    raise ConfigurationError(f"migration {version} broke a foreign key")
                if plugin is None:
                    conn.execute(
                        "INSERT INTO treadle_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)",
                        (version, name, time.time()),
                    )
                else:
                    conn.execute(Q["record_plugin_migration"], {
                        "plugin": plugin, "version": version, "name": name, "now": time.time()})
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if fk_off:
                conn.execute("PRAGMA foreign_keys=ON")

    def _applied(self) -> list[int]:
        conn = self._conn()
        self._busy_retry(lambda: conn.execute(
            "CREATE TABLE IF NOT EXISTS treadle_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        ))
        return [r["version"] for r in self._read("applied_migrations", {})]

    def migrate(self) -> list[int]:
        with translated():
            return self._migrations().migrate()

    def check_schema(self) -> None:
        with translated():
            self._migrations().check()

    def _plugin_migrations(self, plugin: str, sql_package: str) -> MigrationRunner:
        def run(sql: str, version: int, name: str) -> None:
            self._run_script(sql, version, name, plugin)

        def applied() -> list[int]:
            rows = self._read("plugin_applied_migrations", {"plugin": plugin})
            return [r["version"] for r in rows]

        package = plugin_migrations_package(sql_package, "sqlite")
        return MigrationRunner(package, run, applied, what=f"schema of plug-in {plugin!r}")

    def migrate_plugin(self, plugin: str, sql_package: str) -> list[int]:
        with translated():
            return self._plugin_migrations(plugin, sql_package).migrate()

    def check_plugin_schema(self, plugin: str, sql_package: str) -> None:
        with translated():
            self._plugin_migrations(plugin, sql_package).check()


__all__ = ["SchemaOps"]
