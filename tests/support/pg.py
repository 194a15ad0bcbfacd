"""PostgreSQL for tests: an existing server, or a throwaway cluster from local binaries."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL binary {name!r} not found; install postgresql")
    return path


class Cluster:
    """A private PostgreSQL cluster in a temp dir (run as the postgres user when root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="treadle-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "--no-sync"])

    def _run(self, argv: list[str]) -> None:
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                   str(self.dir / "log"), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def server_url() -> tuple[str, Cluster | None]:
    """The admin URL of a server to test against, and the cluster if we started one."""
    env = os.environ.get("TREADLE_TEST_POSTGRES_URL")
    if env:
        return env, None
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if reachable(local):
        return local, None
    cluster = Cluster()
    cluster.start()
    return cluster.url, cluster


def with_db(url: str, db: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{db}"


@contextlib.contextmanager
def database(admin_url: str, template: str | None = None) -> Iterator[str]:
    name = f"treadle_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_db(admin_url, name)
    finally:
        for _ in range(50):
            try:
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.Error:
                time.sleep(0.1)
