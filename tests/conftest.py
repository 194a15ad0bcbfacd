"""Shared fixtures: a store per test on SQLite (temp file) and on PostgreSQL.

PostgreSQL: ``TREADLE_TEST_POSTGRES_URL`` if set, else the server on
127.0.0.1:5432, else a throwaway cluster from local binaries. A template
database is migrated once per session and cloned for every test.

After every test that used one of these databases, every event in it is checked
against the lifecycle table (``tests/support/events.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import pg, s3server
from tests.support.events import assert_events_legal
from treadle.testing import migrated, sqlite_url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url, cluster = pg.server_url()
    try:
        yield url
    finally:
        if cluster is not None:
            cluster.destroy()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    name = f"treadle_tmpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    migrated(pg.with_db(pg_admin_url, name))  # core schema and the built-in kinds'
    try:
        yield name
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    with pg.database(pg_admin_url, template=pg_template) as url:
        yield url
        assert_events_legal(url)


@pytest.fixture(name="sqlite_url")
def sqlite_url_fixture(tmp_path: Path) -> Iterator[str]:
    """An unmigrated SQLite database URL in the test's temp dir."""
    url = sqlite_url(tmp_path)
    yield url
    assert_events_legal(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL, once per backend."""
    if request.param == "sqlite":
        return migrated(str(request.getfixturevalue("sqlite_url")))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) on loopback, once per session."""
    with s3server.moto_server() as url:
        yield url


@pytest.fixture
def s3_store(s3_endpoint: str) -> Iterator[Any]:
    """An S3 artifact store on a fresh bucket of the suite's moto server."""
    from treadle.artifacts.s3 import S3ArtifactStore

    client: Any = s3server.client(s3_endpoint)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    # A low multipart threshold so the suite exercises multipart with small files.
    store = S3ArtifactStore(bucket, "tenant-prefix/a", client=client,
                            multipart_threshold=6 << 20, multipart_chunksize=5 << 20)
    yield store
    store.close()
