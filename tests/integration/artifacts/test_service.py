"""Artifact records with their bytes: ctx.artifacts, idempotent puts, tenants, refcounts."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from treadle import JobContext, Treadle
from treadle.artifacts import ArtifactNotFound, ArtifactStore, LocalArtifactStore
from treadle.core.errors import InvalidInput
from treadle.core.job import NewJob
from treadle.testing import run_worker


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Any:
    a = Treadle(db_url, artifacts=LocalArtifactStore(tmp_path / "blobs"))
    a.migrate()
    yield a
    a.close()


def _job(app: Treadle, tenant: str = "default") -> int:
    return app.store.enqueue([NewJob(task="t", payload={}, tenant=tenant)])[0].job.id


def test_task_puts_and_gets_through_ctx(app: Treadle, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"from a path")

    @app.task(pass_context=True)
    def produce(ctx: JobContext, path: str) -> dict[str, Any]:
        a = ctx.artifacts.put("out/from-path.txt", Path(path))
        ctx.artifacts.put("stream.bin", io.BytesIO(b"\x00\x01" * 1000))
        ctx.artifacts.put("again.txt", b"from a path")  # same bytes, another name
        return {"sha": a.sha256, "read": ctx.artifacts.read_bytes("out/from-path.txt").decode()}

    with run_worker(app):
        job = produce.defer(path=str(src)).wait(20)
    assert job.status.value == "succeeded", job.error
    assert job.result["read"] == "from a path"
    arts = app.job_artifacts(job.id)
    assert [a.name for a in arts] == ["out/from-path.txt", "stream.bin", "again.txt"]
    first = arts[0]
    assert first.sha256 == hashlib.sha256(b"from a path").hexdigest() == arts[2].sha256
    assert first.content_type == "text/plain" and first.size == 11
    assert arts[1].content_type == "application/octet-stream" and arts[1].size == 2000
    assert app.artifacts.read_bytes(app.artifacts.get(arts[1].id)) == b"\x00\x01" * 1000


def test_put_is_idempotent_and_replacing_collects_the_old_object(app: Treadle) -> None:
    job = _job(app)
    svc = app.artifacts
    a1 = svc.put(job, "r.txt", b"v1", tenant="default")
    a2 = svc.put(job, "r.txt", b"v1", tenant="default")  # a retried step
    assert a2.id == a1.id and len(app.job_artifacts(job)) == 1
    a3 = svc.put(job, "r.txt", b"v2", tenant="default")
    assert a3.id == a1.id and a3.sha256 != a1.sha256
    assert not svc.backend.exists(a1.sha256)  # nothing else referenced v1
    assert svc.read_bytes(svc.get(a1.id)) == b"v2"


def test_tenant_scoping(app: Treadle) -> None:
    job = _job(app, tenant="acme")
    art = app.artifacts.put(job, "secret.txt", b"acme only", tenant="acme")
    assert app.artifacts.get(art.id, tenant="acme").name == "secret.txt"
    with pytest.raises(ArtifactNotFound):
        app.artifacts.get(art.id, tenant="other")
    with pytest.raises(ArtifactNotFound):
        app.artifacts.by_name(job, "secret.txt", tenant="other")
    assert app.job_artifacts(job, tenant="other") == []
    with pytest.raises(ArtifactNotFound):
        app.artifacts.get(10**9)


@pytest.mark.parametrize("name", [
    "", "../x", "a/../b", "/abs", "a//b", "a\\b", "nul\x00", "tab\tname", "x" * 256,
    "surrogate\udc80", ".", "a/./b", "trailing/",
])
def test_hostile_names_refused_nothing_stored(app: Treadle, name: str) -> None:
    job = _job(app)
    with pytest.raises(InvalidInput):
        app.artifacts.put(job, name, b"x", tenant="default")
    assert app.job_artifacts(job) == []


def test_hostile_content_type_and_meta(app: Treadle) -> None:
    job = _job(app)
    with pytest.raises(InvalidInput):
        app.artifacts.put(job, "a.txt", b"x", tenant="default",
                          content_type="text/html\r\nSet-Cookie: x=1")
    with pytest.raises(InvalidInput):
        app.artifacts.put(job, "a.txt", b"x", tenant="default", meta={"k": "\udc80"})
    ok = app.artifacts.put(job, "unicode \u00e9\u6f22.txt", b"x", tenant="default")
    assert ok.name == "unicode \u00e9\u6f22.txt"


def test_reference_counted_delete(app: Treadle) -> None:
    a, b = _job(app), _job(app)
    shared = app.artifacts.put(a, "x.bin", b"shared", tenant="default")
    app.artifacts.put(b, "y.bin", b"shared", tenant="default")
    own = app.artifacts.put(a, "own.bin", b"only a", tenant="default")
    assert app.artifacts.delete_job(a) == [own.sha256]
    assert app.artifacts.backend.exists(shared.sha256)
    assert not app.artifacts.backend.exists(own.sha256)
    assert app.job_artifacts(a) == []
    assert app.artifacts.delete_job(b) == [shared.sha256]
    assert not app.artifacts.backend.exists(shared.sha256)


def test_delete_is_safe_under_concurrent_puts(app: Treadle) -> None:
    """Job A's artifacts are deleted over and over while job B stores the same bytes: at
    the end every recorded artifact has its object (no put lost to a delete)."""
    data = os.urandom(64 << 10)
    a = _job(app)
    stop = threading.Event()
    errors: list[BaseException] = []

    def deleter() -> None:
        try:
            while not stop.is_set():
                app.artifacts.put(a, "a.bin", data, tenant="default")
                app.artifacts.delete_job(a)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=deleter)
    thread.start()
    try:
        for i in range(25):
            job = _job(app)
            art = app.artifacts.put(job, f"b{i}.bin", data, tenant="default")
            assert app.artifacts.backend.exists(art.sha256), f"put {i} lost its object"
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    assert app.artifacts.backend.exists(hashlib.sha256(data).hexdigest())


def test_app_with_s3_backend(db_url: str, s3_store: ArtifactStore, tmp_path: Path) -> None:
    app = Treadle(db_url, artifacts=s3_store)
    app.migrate()
    try:
        job = _job(app)
        art = app.artifacts.put(job, "clip.mp4", io.BytesIO(b"not really a video"),
                                tenant="default")
        assert art.content_type == "video/mp4"
        url = app.artifacts.presigned_url(art)
        assert url is not None and url.startswith("http://127.0.0.1:")
        out = app.artifacts.download(art, tmp_path / "clip.mp4")
        assert out.read_bytes() == b"not really a video"
    finally:
        app.close()


def test_default_store_is_beside_the_sqlite_file(tmp_path: Path) -> None:
    app = Treadle(f"sqlite:///{tmp_path / 'q.db'}")
    app.migrate()
    try:
        job = _job(app)
        app.artifacts.put(job, "a.txt", b"x", tenant="default")
        assert (tmp_path / "q.db-artifacts" / "sha256").is_dir()
    finally:
        app.close()


def test_reuse_records_an_existing_object_for_another_job(app: Treadle) -> None:
    a, b = _job(app), _job(app)
    first = app.artifacts.put(a, "cache/k1.mp4", b"encoded once", tenant="default")
    assert app.artifacts.reuse(b, "cache/k1.mp4", tenant="default") is not None
    assert app.artifacts.reuse(b, "other.mp4", tenant="default") is None
    assert app.artifacts.reuse(b, "cache/k1.mp4", tenant="elsewhere") is None
    app.artifacts.delete_job(a)
    again = app.artifacts.by_name(b, "cache/k1.mp4")
    assert again.sha256 == first.sha256 and app.artifacts.backend.exists(first.sha256)


def test_retention_takes_the_rows_and_gc_the_objects(app: Treadle) -> None:
    from treadle.core.outcome import Outcome, OutcomeKind

    job = _job(app)
    kept = _job(app)
    gone = app.artifacts.put(job, "old.bin", b"old bytes", tenant="default")
    shared = app.artifacts.put(job, "shared.bin", b"shared", tenant="default")
    app.artifacts.put(kept, "shared.bin", b"shared", tenant="default")
    claimed = app.store.claim(queues=None, worker="w", limit=10, lease_seconds=30)
    app.store.complete([Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "w", result=None)
                        for j in claimed if j.id == job])
    assert app.store.prune(limit=10, older_than=0) == 1  # the finished job goes
    assert app.job_artifacts(job) == []
    assert app.artifacts.collect_garbage() == 1
    assert not app.artifacts.backend.exists(gone.sha256)
    assert app.artifacts.backend.exists(shared.sha256)  # still referenced by the other job
