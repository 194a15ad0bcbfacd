"""Artifact backends under test: the local directory and S3 (a real moto server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.artifacts import ArtifactStore, LocalArtifactStore


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each test of the shared suite runs once per backend."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    store: ArtifactStore = request.getfixturevalue("s3_store")
    return store
