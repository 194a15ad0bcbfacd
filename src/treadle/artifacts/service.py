"""``app.artifacts``: put, find, read and delete the files jobs produce."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from treadle.artifacts.blobstore import ArtifactStore, Blob, BlobMissing, hash_file, spool
from treadle.artifacts.model import Artifact, ArtifactNotFound
from treadle.artifacts.names import check_content_type, check_name
from treadle.artifacts.records import ArtifactRecords
from treadle.artifacts.steps import current_step
from treadle.core import storable
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import MAX_JOB_ID, validate_name
from treadle.store import Store

Source = Path | str | bytes | BinaryIO
MAX_META_BYTES = 16 << 10
# How long a writer's hold on a blob lasts (ADR 0016): far longer than an upload takes, so
# the collector never removes an object while it is written. A put that outlives it is
# still safe (the check after recording re-uploads), just no longer cheap.
HOLD_SECONDS = 6 * 3600.0


class ArtifactService:
    """One app's artifacts: rows in its database, bytes in an :class:`ArtifactStore`."""

    def __init__(
        self, store: Store, backend: ArtifactStore | Callable[[], ArtifactStore],
        *, hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        if not 1.0 <= hold_seconds <= 30 * 86_400:
            raise ConfigurationError("an artifact hold lasts 1 s to 30 days")
        self.hold_seconds = hold_seconds
        # A factory defers the choice (and its errors: a server database with no artifacts
        # URL) to the first use of bytes; rows can be listed without a backend.
        self._backend = backend if isinstance(backend, ArtifactStore) else None
        self._factory = None if isinstance(backend, ArtifactStore) else backend
        self._lock = threading.Lock()
        self.records = ArtifactRecords(store)

    @property
    def backend(self) -> ArtifactStore:
        with self._lock:
            if self._backend is None:
                assert self._factory is not None
                self._backend = self._factory()
            return self._backend

    def __repr__(self) -> str:
        return f"<ArtifactService {self._backend or 'unopened'!r}>"

    # -- writing ---------------------------------------------------------------

    def put(
        self,
        job_id: int,
        name: str,
        source: Source,
        *,
        tenant: str,
        step: str | None = None,
        content_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """Store ``source`` (a path, bytes, or a binary stream) as artifact ``name`` of the
        job. Idempotent: the same name and bytes again change nothing; new bytes under the
        same name replace the old (whose object goes if nothing else references it)."""
        name = check_name(name)
        ctype = check_content_type(content_type, name)
        step = _check_owner(job_id, tenant, step if step is not None else current_step())
        meta = _check_meta(meta)
        path, blob, temporary = self._materialise(source)
        try:
            # Held before the first byte goes up: the collector leaves it alone until the
            # reference below is committed (which releases the hold).
            self.records.hold(blob, self.hold_seconds)
            self.backend.ensure(path, blob)
            artifact, replaced = self.records.record(
                tenant=tenant, job_id=job_id, step=step, name=name, blob=blob,
                content_type=ctype, meta=meta)
            # A delete that held the blob's row before our pin may have removed the object
            # after the first ensure: now that the pin is committed nothing can, so check.
            self.backend.ensure(path, blob)
        finally:
            if temporary:
                path.unlink(missing_ok=True)
        if replaced is not None:
            self.records.collect([replaced], self.backend.delete)
        return artifact

    def store_file(self, path: Path, *, hold_seconds: float | None = None) -> Blob:
        """Store a file's bytes without recording an artifact yet, held (safe from the
        collector) for ``hold_seconds``: record it with :meth:`put_blob` before then."""
        blob = hash_file(path)
        self.records.hold(blob, hold_seconds or self.hold_seconds)
        self.backend.ensure(path, blob)
        return blob

    def reuse(
        self,
        job_id: int,
        name: str,
        *,
        tenant: str,
        step: str | None = None,
        like: str | None = None,
    ) -> Artifact | None:
        """Record for this job the newest artifact of ``tenant`` named ``like`` (default:
        ``name``) whose object still exists, without touching its bytes; None if there is
        none. Outputs named by a key of their inputs are found again this way."""
        check_name(name)
        step = _check_owner(job_id, tenant, step)
        found = self.records.find(tenant, check_name(like or name))
        if found is None:
            return None
        if found.job_id == job_id and found.name == name:
            return found if self.backend.exists(found.sha256) else None
        return self.put_blob(job_id, name, Blob(found.sha256, found.size), tenant=tenant,
                             step=step, content_type=found.content_type, meta=found.meta)

    def put_blob(
        self,
        job_id: int,
        name: str,
        blob: Blob,
        *,
        tenant: str,
        step: str | None = None,
        content_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Artifact | None:
        """Record an object already in the store as artifact ``name`` (no bytes move);
        None if the object is not there (any more). Callers must know the sha256 is the
        tenant's to use: it is never taken from an untrusted request."""
        name = check_name(name)
        ctype = check_content_type(content_type, name)
        step = _check_owner(job_id, tenant, step if step is not None else current_step())
        meta = _check_meta(meta)
        if not self.backend.exists(blob.sha256):
            return None
        artifact, replaced = self.records.record(
            tenant=tenant, job_id=job_id, step=step, name=name, blob=blob,
            content_type=ctype, meta=meta)
        # Pinned now: if the object went before the pin, this row must not stay.
        if not self.backend.exists(blob.sha256):
            self.records.delete_one(artifact.id, self.backend.delete)
            return None
        if replaced is not None:
            self.records.collect([replaced], self.backend.delete)
        return artifact

    def _materialise(self, source: Source) -> tuple[Path, Blob, bool]:
        """A file holding the content, its address, and whether it is ours to remove."""
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                is_file = path.is_file()
            except (OSError, ValueError):  # a name too long, with NUL, not encodable
                is_file = False
            if not is_file:
                raise InvalidInput(f"not a file: {str(path)[:200]!r}")
            return path, hash_file(path), False
        if isinstance(source, bytes | bytearray | memoryview):
            source = io.BytesIO(bytes(source))
        if not hasattr(source, "read"):
            raise InvalidInput("an artifact is a path, bytes or a binary stream")
        path, blob = spool(source, self.backend.spool_dir())
        return path, blob, True

    def delete_job(self, job_id: int) -> list[str]:
        """Forget a job's artifacts; delete the objects no other job references (returns
        their sha256). What a job's retention calls when the job goes."""
        return self.records.delete_job(job_id, self.backend.delete)

    def collect_garbage(self, *, batch: int = 500, max_batches: int | None = None) -> int:
        """Delete stored objects no artifact references and no writer holds (jobs deleted
        by retention take their artifact rows with them); returns how many went. At most
        ``max_batches`` transactions of ``batch`` (None: until none is left)."""
        total = rounds = 0
        while max_batches is None or rounds < max_batches:
            gone = self.records.collect_orphans(self.backend.delete, batch)
            total += len(gone)
            rounds += 1
            if len(gone) < batch:
                break
        return total

    # -- reading ---------------------------------------------------------------

    def get(self, artifact_id: int, *, tenant: str | None = None) -> Artifact:
        """By id; another tenant's artifact is ``ArtifactNotFound`` like a missing one."""
        return self.records.get(artifact_id, _check_tenant(tenant))

    def by_name(self, job_id: int, name: str, *, tenant: str | None = None) -> Artifact:
        return self.records.by_name(job_id, check_name(name), _check_tenant(tenant))

    def for_job(self, job_id: int, *, tenant: str | None = None) -> list[Artifact]:
        return self.records.for_job(job_id, _check_tenant(tenant))

    def open(self, artifact: Artifact, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)``, streamed in chunks."""
        for bound in (start, end):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)
                                      or not 0 <= bound <= MAX_OFFSET):
                raise InvalidInput("a byte range is two offsets from 0 (end exclusive)")
        try:
            return self.backend.read(artifact.sha256, start, end)
        except BlobMissing:
            raise ArtifactNotFound(
                f"the content of artifact {artifact.id} is missing from the artifact store",
                detail={"id": artifact.id}) from None

    def read_bytes(self, artifact: Artifact) -> bytes:
        return b"".join(self.open(artifact))

    def download(self, artifact: Artifact, path: Path) -> Path:
        try:
            self.backend.download(artifact.sha256, path)
        except (ValueError, IsADirectoryError):  # NUL in the path; a directory there
            raise InvalidInput(f"cannot write the artifact to {str(path)[:200]!r}") from None
        except BlobMissing:
            raise ArtifactNotFound(f"the content of artifact {artifact.id} is missing",
                                   detail={"id": artifact.id}) from None
        return path

    def presigned_url(self, artifact: Artifact, *, expires: int = 300) -> str | None:
        from treadle.artifacts.names import download_name

        return self.backend.presigned_url(
            artifact.sha256, filename=download_name(artifact.name),
            content_type=artifact.content_type, expires=expires)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


MAX_OFFSET = (1 << 63) - 1


def _check_owner(job_id: object, tenant: object, step: str | None) -> str | None:
    """The job, tenant and step an artifact is recorded under, by the rules of a job's
    own (a store cannot hold NUL or a lone surrogate, nor an id beyond 64 bits)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 1 <= job_id <= MAX_JOB_ID:
        raise InvalidInput("an artifact's job_id must be the id of a job (a positive integer)")
    validate_name("tenant", tenant)  # type: ignore[arg-type]
    if step is not None:
        validate_name("step name", step)
    return step


def _check_tenant(tenant: str | None) -> str | None:
    return None if tenant is None else validate_name("tenant", tenant)


def _check_meta(meta: object) -> dict[str, Any]:
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidInput("artifact meta must be a dict")
    out = dict(meta or {})
    storable.check(out, "artifact meta", max_bytes=MAX_META_BYTES)
    return out
