"""One suite, every backend: content addressing, idempotency, streams, ranges, multipart."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import urllib.request
from pathlib import Path

import pytest

from treadle.artifacts import ArtifactStore, BlobMissing
from treadle.artifacts.blobstore import CHUNK
from treadle.artifacts.s3 import S3ArtifactStore
from treadle.core.errors import InvalidInput


def _file(tmp_path: Path, data: bytes, name: str = "f.bin") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_put_is_content_addressed_and_idempotent(backend: ArtifactStore, tmp_path: Path) -> None:
    data = b"hello artifacts"
    blob = backend.put_file(_file(tmp_path, data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert backend.exists(blob.sha256)
    assert backend.size(blob.sha256) == len(data)
    # Same bytes again, by path or stream: same address, nothing uploaded.
    assert backend.put_stream(io.BytesIO(data)) == blob
    assert backend.ensure(_file(tmp_path, data, "g.bin"), blob) is False
    assert b"".join(backend.read(blob.sha256)) == data


def test_empty_content(backend: ArtifactStore) -> None:
    blob = backend.put_stream(io.BytesIO(b""))
    assert blob.size == 0
    assert b"".join(backend.read(blob.sha256)) == b""


def test_streams_large_content_in_bounded_chunks(backend: ArtifactStore, tmp_path: Path) -> None:
    # 13 MiB: above the S3 fixture's multipart threshold (6 MiB, 5 MiB parts -> 3 parts).
    data = os.urandom(13 << 20)
    blob = backend.put_stream(io.BytesIO(data))
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    chunks = list(backend.read(blob.sha256))
    assert max(len(c) for c in chunks) <= CHUNK
    assert b"".join(chunks) == data
    out = tmp_path / "out.bin"
    backend.download(blob.sha256, out)
    assert out.read_bytes() == data


def test_multipart_upload_on_s3(s3_store: S3ArtifactStore) -> None:
    data = os.urandom(13 << 20)
    blob = s3_store.put_stream(io.BytesIO(data))
    head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=s3_store.key(blob.sha256))
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag names its part count
    assert s3_store.key(blob.sha256).startswith("tenant-prefix/a/sha256/")


@pytest.mark.parametrize(("start", "end"), [(0, 1), (5, 10), (10, None), (0, None), (3, 3),
                                            (20, None), (15, 100)])
def test_ranged_reads(backend: ArtifactStore, start: int, end: int | None) -> None:
    data = b"0123456789abcdefghij"
    blob = backend.put_stream(io.BytesIO(data))
    assert b"".join(backend.read(blob.sha256, start, end)) == data[start:end]


def test_missing_and_delete(backend: ArtifactStore) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not backend.exists(absent)
    with pytest.raises(BlobMissing):
        backend.size(absent)
    with pytest.raises(BlobMissing):
        b"".join(backend.read(absent))
    backend.delete(absent)  # absent: no error
    blob = backend.put_stream(io.BytesIO(b"x"))
    backend.delete(blob.sha256)
    assert not backend.exists(blob.sha256)


@pytest.mark.parametrize("key", ["../../etc/passwd", "AB" * 32, "a" * 63, "", "a/" + "b" * 62])
def test_hostile_keys_refused(backend: ArtifactStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        backend.exists(key)
    with pytest.raises(InvalidInput):
        backend.delete(key)


def test_concurrent_puts_of_same_content(backend: ArtifactStore) -> None:
    data = os.urandom(256 << 10)
    results: list[object] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(backend.put_stream(io.BytesIO(data)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert b"".join(backend.read(hashlib.sha256(data).hexdigest())) == data


def test_presigned_url_downloads_on_s3(s3_store: S3ArtifactStore) -> None:
    blob = s3_store.put_stream(io.BytesIO(b"presigned bytes"))
    url = s3_store.presigned_url(blob.sha256, filename="r\u00e9sum\u00e9 \"x\".txt",
                                 content_type="text/plain", expires=60)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"presigned bytes"
        assert resp.headers["Content-Type"] == "text/plain"
        assert "attachment" in resp.headers["Content-Disposition"]


def test_local_has_no_presigned_url(tmp_path: Path) -> None:
    from treadle.artifacts import LocalArtifactStore

    store = LocalArtifactStore(tmp_path / "a")
    blob = store.put_stream(io.BytesIO(b"x"))
    assert store.presigned_url(blob.sha256, filename="x", content_type="text/plain") is None
    assert not list((tmp_path / "a" / "tmp").iterdir())  # no temporaries left behind
