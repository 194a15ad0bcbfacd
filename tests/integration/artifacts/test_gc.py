"""Artifact garbage collection in the maintenance loop (ADR 0016), on every backend pair:
SQLite and PostgreSQL rows, local and S3 (a real moto server) objects."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from treadle import Treadle
from treadle.artifacts import ArtifactStore, Blob
from treadle.artifacts.gc import ArtifactCollector, artifact_services
from treadle.core.clock import ManualClock
from treadle.core.errors import ConfigurationError
from treadle.core.job import NewJob
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.testing import run_worker


class PausingStore(ArtifactStore):
    """A backend whose ``ensure`` stops after storing the object until released: a put
    caught between its upload and the transaction that records its reference."""

    def __init__(self, inner: ArtifactStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.pause = False
        self.uploaded = threading.Event()
        self.release = threading.Event()

    def ensure(self, path: Path, blob: Blob) -> bool:
        stored = self.inner.ensure(path, blob)
        if self.pause:
            self.pause = False  # only the first ensure of the put under test
            self.uploaded.set()
            assert self.release.wait(30)
        return stored

    def exists(self, sha256: str) -> bool:
        return self.inner.exists(sha256)

    def size(self, sha256: str) -> int:
        return self.inner.size(sha256)

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        return self.inner.read(sha256, start, end)

    def delete(self, sha256: str) -> None:
        self.inner.delete(sha256)

    def spool_dir(self) -> Path | None:
        return self.inner.spool_dir()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(db_url: str, backend: ArtifactStore, clock: ManualClock) -> Iterator[Treadle]:
    a = Treadle(db_url, artifacts=PausingStore(backend), clock=clock)
    a.migrate()
    yield a
    a.close()


def _job(app: Treadle) -> int:
    return app.store.enqueue([NewJob(task="t", payload={})])[0].job.id


def _finish_and_prune(app: Treadle, job_id: int) -> None:
    """Retention takes the finished job (and, by cascade, its artifact rows)."""
    claimed = app.store.claim(queues=None, worker="w", limit=100, lease_seconds=30)
    app.store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w", result=None)
                        for j in claimed if j.id == job_id])
    if isinstance(app.clock, ManualClock):
        app.clock.advance(1)  # finished strictly before now
    assert app.store.prune(limit=100, older_than=0) == 1
    assert app.job_artifacts(job_id) == []


def test_collector_removes_what_retention_left_unreferenced(app: Treadle) -> None:
    old, kept = _job(app), _job(app)
    own = app.artifacts.put(old, "own.bin", b"only the old job", tenant="default")
    shared = app.artifacts.put(old, "shared.bin", b"both jobs", tenant="default")
    app.artifacts.put(kept, "same.bin", b"both jobs", tenant="default")
    collector = ArtifactCollector(app.artifacts, batch=1)
    assert collector.run_once() == 0  # everything is referenced
    _finish_and_prune(app, old)
    assert collector.run_once() == 1
    backend = app.artifacts.backend
    assert not backend.exists(own.sha256)
    assert backend.exists(shared.sha256)  # the kept job still references it
    assert app.artifacts.read_bytes(app.artifacts.by_name(kept, "same.bin")) == b"both jobs"
    assert collector.run_once() == 0


def test_a_blob_being_written_is_never_collected(app: Treadle) -> None:
    """A put is caught after its upload, before its reference is recorded, while the same
    content's previous owner was pruned: the collector (and a reference-counted delete)
    must leave the object alone; once the put records, it is simply referenced."""
    data = b"written while the collector runs"
    sha = hashlib.sha256(data).hexdigest()
    first = _job(app)
    app.artifacts.put(first, "a.bin", data, tenant="default")
    _finish_and_prune(app, first)  # the blob is now an orphan candidate
    store: Any = app.artifacts.backend
    store.pause = True
    writer = _job(app)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(
        app.artifacts.put(writer, "b.bin", data, tenant="default")))
    thread.start()
    try:
        assert store.uploaded.wait(30)
        assert app.artifacts.records.held() == [sha]
        assert ArtifactCollector(app.artifacts).run_once() == 0
        assert app.artifacts.records.collect([sha], store.delete) == []
        assert store.inner.exists(sha)
    finally:
        store.release.set()
        thread.join(30)
    assert result and result[0].sha256 == sha
    assert app.artifacts.records.held() == []  # recording released the hold
    assert ArtifactCollector(app.artifacts).run_once() == 0
    assert app.artifacts.read_bytes(result[0]) == data


def test_a_dead_writers_hold_expires_and_its_object_is_collected(
        app: Treadle, clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    path.write_bytes(b"uploaded by a writer that then died")
    blob = app.artifacts.store_file(path, hold_seconds=600)  # no reference ever recorded
    collector = ArtifactCollector(app.artifacts)
    assert collector.run_once() == 0
    clock.advance(599)
    assert collector.run_once() == 0 and app.artifacts.backend.exists(blob.sha256)
    clock.advance(2)
    assert collector.run_once() == 1
    assert not app.artifacts.backend.exists(blob.sha256)


def test_deleting_a_job_deletes_only_what_no_other_job_references(app: Treadle) -> None:
    a, b = _job(app), _job(app)
    mine = app.artifacts.put(a, "mine.txt", b"a's own", tenant="default")
    both = app.artifacts.put(a, "both.txt", b"shared", tenant="default")
    app.artifacts.put(b, "both.txt", b"shared", tenant="default")
    assert app.artifacts.delete_job(a) == [mine.sha256]
    assert app.artifacts.backend.exists(both.sha256)
    assert ArtifactCollector(app.artifacts).run_once() == 0


def test_every_worker_runs_the_collector(db_url: str, backend: ArtifactStore) -> None:
    app = Treadle(db_url, artifacts=backend)
    app.migrate()
    app.artifacts_gc_interval = 0.1
    try:
        old = _job(app)
        art = app.artifacts.put(old, "old.bin", b"pruned by retention", tenant="default")
        _finish_and_prune(app, old)
        assert [type(s) for s in app.worker_options()["services"]].count(ArtifactCollector) == 1
        with run_worker(app):
            deadline = time.monotonic() + 20
            while app.artifacts.backend.exists(art.sha256) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert not app.artifacts.backend.exists(art.sha256)
    finally:
        app.close()


def test_collector_config_is_validated_and_skipped_without_a_store(pg_url: str) -> None:
    app = Treadle(pg_url)  # a server database, no TREADLE_ARTIFACTS_URL: nothing to collect
    try:
        assert artifact_services(app) == []
        with pytest.raises(ConfigurationError):
            ArtifactCollector(app.artifacts, interval=0)
        with pytest.raises(ConfigurationError):
            ArtifactCollector(app.artifacts, batch=0)
    finally:
        app.close()
