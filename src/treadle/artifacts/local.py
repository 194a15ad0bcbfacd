"""The local-directory backend: the embedded default, next to the SQLite file.

Layout under the root: ``sha256/ab/<sha256>`` for objects, ``tmp/`` for files being
written. An object appears only by ``os.replace`` of a complete, fsynced file from
``tmp/`` (same filesystem, atomic), so a reader never sees half an object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from treadle.artifacts.blobstore import CHUNK, ArtifactStore, Blob, BlobMissing, object_key


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<LocalArtifactStore {str(self.root)!r}>"

    def _path(self, sha256: str) -> Path:
        # object_key validates the digest: no user string ever becomes a path here.
        return self.root / object_key(sha256)

    def spool_dir(self) -> Path:
        return self._tmp

    def ensure(self, path: Path, blob: Blob) -> bool:
        dest = self._path(blob.sha256)
        try:
            if dest.stat().st_size == blob.size:
                return False
        except FileNotFoundError:
            pass
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="obj-", suffix=".part", dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return True

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(sha256)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the generator's finally
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        return _chunks(f, start, end)

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.is_file() else None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


def _chunks(f: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    with f:
        f.seek(start)
        remaining = None if end is None else max(0, end - start)
        while remaining is None or remaining > 0:
            chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
