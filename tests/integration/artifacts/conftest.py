"""Artifact backends under test: the local directory and S3 (a real moto server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import s3server
from treadle.artifacts import ArtifactStore, LocalArtifactStore
from treadle.artifacts.s3 import S3ArtifactStore


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3server.moto_server() as url:
        yield url


@pytest.fixture
def s3_store(s3_endpoint: str) -> Iterator[S3ArtifactStore]:
    client: Any = s3server.client(s3_endpoint)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    # A low multipart threshold so the suite exercises multipart with small files.
    store = S3ArtifactStore(bucket, "tenant-prefix/a", client=client,
                            multipart_threshold=6 << 20, multipart_chunksize=5 << 20)
    yield store
    store.close()


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each test of the shared suite runs once per backend."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    store: ArtifactStore = request.getfixturevalue("s3_store")
    return store
