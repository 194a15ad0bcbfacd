"""Migrations: immutable once shipped, and the two backends describe the same schema."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import psycopg

from treadle.artifacts.records import SQL_PACKAGE as ARTIFACTS_SQL
from treadle.artifacts.records import TRACK as ARTIFACTS_TRACK
from treadle.kinds import builtin_plugins
from treadle.store.queries import load_migrations
from treadle.store.sqlite.store import sqlite_path
from treadle.streams.repo import SQL_PACKAGE as STREAMS_SQL
from treadle.streams.repo import TRACK as STREAMS_TRACK
from treadle.testing import migrated

LOCK = Path(__file__).parent / "migrations.lock.json"
PACKAGES = ("treadle.store.sqlite.migrations", "treadle.store.postgres.migrations")
# Each built-in job-kind plug-in's own track (ADR 0008), locked as "<plugin>/<backend>".
_TRACKS = {p.name: p.sql_package for p in builtin_plugins() if p.sql_package}
_TRACKS[STREAMS_TRACK] = STREAMS_SQL  # not a job kind, but its own track like one
_TRACKS[ARTIFACTS_TRACK] = ARTIFACTS_SQL  # the same: every kind's files
PLUGIN_TRACKS = {
    f"{name}/{backend}": f"{package}.{backend}.migrations"
    for name, package in _TRACKS.items()
    for backend in ("sqlite", "postgres")
}


def checksums() -> dict[str, dict[str, str]]:
    tracks = {pkg.split(".")[2]: pkg for pkg in PACKAGES} | PLUGIN_TRACKS
    return {
        track: {
            f"{n:04d}_{name}": hashlib.sha256(sql.encode()).hexdigest()
            for n, name, sql in load_migrations(pkg)
        }
        for track, pkg in tracks.items()
    }


def test_shipped_migrations_are_never_edited() -> None:
    """A migration that ran somewhere must not change; add a new number instead.

    When you add a migration, append its checksum to migrations.lock.json.
    """
    locked = json.loads(LOCK.read_text())
    current = checksums()
    for backend, files in locked.items():
        for name, digest in files.items():
            assert current[backend].get(name) == digest, f"{backend}/{name} was edited"
    for backend, files in current.items():
        assert set(files) == set(locked[backend]), f"record new {backend} migrations in the lock"


def test_both_backends_have_the_same_numbered_migrations() -> None:
    sqlite, postgres = ([(n, name) for n, name, _ in load_migrations(p)] for p in PACKAGES)
    assert sqlite == postgres
    for plugin in {track.split("/")[0] for track in PLUGIN_TRACKS}:
        lite, pg = ([(n, name) for n, name, _ in load_migrations(PLUGIN_TRACKS[f"{plugin}/{b}"])]
                    for b in ("sqlite", "postgres"))
        assert lite == pg, plugin


def test_both_backends_migrate_to_the_same_tables_and_columns(
    sqlite_url: str, pg_url: str
) -> None:
    migrated(sqlite_url)  # core and every track app.migrate() applies, as pg_url's template
    conn = sqlite3.connect(sqlite_path(sqlite_url))
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'treadle_%'")]
    lite = {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    conn.close()
    with psycopg.connect(pg_url) as pconn:
        rows = pconn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name LIKE 'treadle_%'").fetchall()
    pg: dict[str, set[str]] = {}
    for table, column in rows:
        pg.setdefault(table, set()).add(column)
    assert lite == pg
