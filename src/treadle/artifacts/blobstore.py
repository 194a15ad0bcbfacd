"""``ArtifactStore``: the seam between Treadle and where artifact bytes live.

Bytes are content-addressed: an object's key is the sha256 of its content, so putting the
same bytes twice stores them once and a retried step never duplicates a file. Names, jobs,
steps and tenants are the database's business (``records.py``); a backend only knows
``sha256 -> bytes``. Two backends implement it: a local directory (``local.py``, the
embedded default) and S3-compatible object storage (``s3.py``, extra ``treadle[s3]``).

Everything streams in fixed-size chunks: no whole file is ever held in memory.
"""

from __future__ import annotations

import abc
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from treadle.core.errors import InvalidInput

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to bound memory
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Blob:
    """Stored content: its sha256 (hex) and size in bytes."""

    sha256: str
    size: int


class BlobMissing(LookupError):
    """No object with that sha256 in the backend."""


def check_sha256(sha256: str) -> str:
    """Refuse anything but 64 lowercase hex digits (a key never comes from a user as-is)."""
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidInput("not a sha256 digest (64 lowercase hex digits)")
    return sha256


def object_key(sha256: str) -> str:
    """``sha256/ab/abcdef…``: two-level fan-out keeps directories (and S3 listings) small."""
    check_sha256(sha256)
    return f"sha256/{sha256[:2]}/{sha256}"


def hash_file(path: Path) -> Blob:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Blob(digest.hexdigest(), size)


def spool(stream: BinaryIO, directory: Path | None) -> tuple[Path, Blob]:
    """Copy ``stream`` to a new temporary file in ``directory`` while hashing it.

    The caller owns (and removes) the file. The content must be known before it can be
    addressed, and a stream can be read only once: so it is written down first.
    """
    fd, name = tempfile.mkstemp(prefix="put-", suffix=".part", dir=directory)
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise InvalidInput("an artifact stream must yield bytes (open it in 'rb')")
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, Blob(digest.hexdigest(), size)


class ArtifactStore(abc.ABC):
    """Where artifact bytes live, addressed by sha256. Implementations are thread-safe."""

    url: str

    def put_file(self, path: Path) -> Blob:
        """Store the file's content unless already there; return its address."""
        blob = hash_file(path)
        self.ensure(path, blob)
        return blob

    def put_stream(self, stream: BinaryIO) -> Blob:
        """Store everything read from ``stream`` (binary); return its address."""
        tmp, blob = spool(stream, self.spool_dir())
        try:
            self.ensure(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)
        return blob

    def spool_dir(self) -> Path | None:
        """Where ``put_stream`` writes down a stream before storing it (None: the system's)."""
        return None

    @abc.abstractmethod
    def ensure(self, path: Path, blob: Blob) -> bool:
        """Make sure the object ``blob`` exists, uploading ``path`` (whose content it is)
        if it does not; True if it uploaded. Idempotent, safe to call concurrently."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def size(self, sha256: str) -> int:
        """The stored size in bytes; ``BlobMissing`` if absent."""

    @abc.abstractmethod
    def read(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end)`` (``end`` None: to the end), in chunks of at most CHUNK.

        ``BlobMissing`` if absent (raised by this call, before any chunk)."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the object; nothing happens if it is absent."""

    def local_path(self, sha256: str) -> Path | None:
        """The object as a local file to read (never write), if the backend has one."""
        return None

    def presigned_url(
        self, sha256: str, *, filename: str, content_type: str, expires: int = 300
    ) -> str | None:
        """A short-lived URL a client may download from directly, or None (local store)."""
        return None

    def download(self, sha256: str, path: Path) -> None:
        """Write the object to ``path`` (through a temporary file: never half a file)."""
        fd, name = tempfile.mkstemp(prefix=".get-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.read(sha256):
                    out.write(chunk)
            os.replace(name, path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def close(self) -> None:  # noqa: B027 - optional
        """Release clients and pools."""
