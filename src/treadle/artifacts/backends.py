"""``open_artifact_store(url)``: pick a backend from a URL; the default beside the database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from treadle.artifacts.blobstore import ArtifactStore
from treadle.core.errors import ConfigurationError


def open_artifact_store(url: str) -> ArtifactStore:
    """``file:///var/lib/treadle/artifacts`` or ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(f"a file: artifacts URL names no host, got {url!r}")
        from treadle.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(unquote(parts.path))
    if parts.scheme == "s3":
        from treadle.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore(parts.netloc, unquote(parts.path))
    raise ConfigurationError(
        f"unsupported artifacts URL {url!r}: use file:///path or s3://bucket/prefix")


def default_artifacts_url(database_url: str) -> str:
    """The embedded default: a directory beside the SQLite file (``treadle.db`` ->
    ``treadle.db-artifacts/``). A server database has no such place: configure one."""
    if database_url.startswith("sqlite:"):
        from treadle.store.sqlite.store import sqlite_path

        path = sqlite_path(database_url).split("?", 1)[0]
        if path == ":memory:" or "mode=memory" in database_url:
            raise ConfigurationError(
                "an in-memory database has no directory for artifacts: pass artifacts=URL")
        db = Path(path).resolve()
        return (db.parent / f"{db.name}-artifacts").as_uri()
    raise ConfigurationError(
        "artifacts need a place: set TREADLE_ARTIFACTS_URL (file:///dir or s3://bucket/prefix)"
        " or pass Treadle(url, artifacts=...)")
