"""Artifact rows, and the protocol that keeps rows and stored objects consistent.

A put and a reference-counted delete can race on the same content (job A deleted while
job B stores identical bytes). They serialise on the blob's row (``treadle_artifact_blobs``):

* put: upload the object if absent -> in one transaction, pin the blob row and upsert the
  artifact row -> after commit, check the object again and upload it if it is gone.
* delete: in one transaction, delete the job's artifact rows; for each of their blobs,
  lock its row, count references, and when none are left delete the object *and then*
  the row before committing.

Either the put's pin commits first (the delete sees its reference and keeps the object),
or the delete holds the row first (the put's pin waits for it to commit: SQLite's single
writer, PostgreSQL's row lock), and the put's check after its commit finds the object gone
and stores it again. A crash between the delete's object removal and its commit leaves a
row without an object: the next put of that content re-uploads it (the check), and a
later delete finds no references and removes the row.

Holds (ADR 0016): before it uploads, a put *holds* the blob's row (``held_until``, its own
committed transaction), and recording the reference releases the hold. So every object
has a row from before its first byte is written, and nothing removes a held blob: the
garbage collector (``gc.py``) and reference-counted deletes both ask ``blob_in_use``
(referenced, or held) under the row's lock. A writer that dies leaves a hold that
expires; then the collector takes the object and its row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from treadle.artifacts.blobstore import Blob
from treadle.artifacts.model import Artifact, ArtifactNotFound
from treadle.store import Store
from treadle.store.extension import ExtensionSql

SQL_PACKAGE = "treadle.artifacts.sql"
TRACK = "artifacts"  # the migration track's name (treadle_plugin_migrations.plugin)


class ArtifactRecords:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sql = ExtensionSql.of_package(store, SQL_PACKAGE)

    def migrate(self) -> list[int]:
        return self.store.migrate_plugin(TRACK, SQL_PACKAGE)

    def check_schema(self) -> None:
        self.store.check_plugin_schema(TRACK, SQL_PACKAGE)

    def _artifact(self, row: Mapping[str, Any]) -> Artifact:
        meta = row["meta"]
        return Artifact(
            id=int(row["id"]), tenant=row["tenant"], job_id=int(row["job_id"]),
            step=row["step"], name=row["name"], sha256=row["sha256"], size=int(row["size"]),
            content_type=row["content_type"],
            created_at=self.sql.codec.ts_out(row["created_at"]),
            meta=json.loads(meta) if isinstance(meta, str) else dict(meta or {}),
        )

    # -- writes ----------------------------------------------------------------

    def record(
        self, *, tenant: str, job_id: int, step: str | None, name: str, blob: Blob,
        content_type: str, meta: Mapping[str, Any],
    ) -> tuple[Artifact, str | None]:
        """Pin ``blob`` and upsert the row; returns it and the sha256 it replaced (if any)."""
        now = self.sql.ts_in(self.sql.now())
        with self.store.transaction() as tx:
            self.sql.run("pin_blob", {"sha256": blob.sha256, "size": blob.size, "now": now},
                         tx=tx)
            old = self.sql.run("artifact_sha", {"job_id": job_id, "name": name}, tx=tx)
            rows = self.sql.run("upsert_artifact", {
                "tenant": tenant, "job_id": job_id, "step": step, "name": name,
                "sha256": blob.sha256, "size": blob.size, "content_type": content_type,
                "meta": self.sql.json_in(dict(meta)), "now": now}, tx=tx)
        replaced = old[0]["sha256"] if old and old[0]["sha256"] != blob.sha256 else None
        return self._artifact(rows[0]), replaced

    def hold(self, blob: Blob, seconds: float) -> None:
        """Hold ``blob``'s row for ``seconds`` (committed now): its object is safe from
        collection while it is uploaded and until a reference is recorded."""
        now = self.sql.now()
        self.sql.run("hold_blob", {
            "sha256": blob.sha256, "size": blob.size, "now": self.sql.ts_in(now),
            "until": self.sql.ts_in(now + timedelta(seconds=seconds))}, write=True)

    def held(self) -> list[str]:
        """The sha256 of every blob held now."""
        return [r["sha256"] for r in self.sql.run("held_blobs", {"now": self._now()})]

    def _now(self) -> Any:
        return self.sql.ts_in(self.sql.now())

    def delete_job(self, job_id: int, delete_object: Callable[[str], None]) -> list[str]:
        """Delete a job's rows; delete (with ``delete_object``) the objects no other row
        references, inside the transaction (see the module docstring). Returns those."""
        with self.store.transaction() as tx:
            rows = self.sql.run("delete_job_artifacts", {"job_id": job_id}, tx=tx)
            return self._collect(tx, sorted({r["sha256"] for r in rows}), delete_object)

    def delete_one(self, artifact_id: int, delete_object: Callable[[str], None]) -> list[str]:
        with self.store.transaction() as tx:
            rows = self.sql.run("delete_artifact", {"id": artifact_id}, tx=tx)
            return self._collect(tx, [r["sha256"] for r in rows], delete_object)

    def collect_orphans(self, delete_object: Callable[[str], None], limit: int) -> list[str]:
        """Delete up to ``limit`` objects that no artifact references and no writer holds
        (each re-checked under its row's lock, so a put racing the collection keeps its
        object)."""
        shas = [r["sha256"] for r in self.sql.run("orphan_blobs",
                                                 {"limit": limit, "now": self._now()})]
        return self.collect(shas, delete_object) if shas else []

    def collect(self, shas: list[str], delete_object: Callable[[str], None]) -> list[str]:
        """Delete the objects among ``shas`` that nothing references any more."""
        with self.store.transaction() as tx:
            return self._collect(tx, shas, delete_object)

    def _collect(self, tx: Any, shas: list[str],
                 delete_object: Callable[[str], None]) -> list[str]:
        gone = []
        for sha in shas:  # sorted: two deletes lock rows in one order (no deadlock)
            if not self.sql.run("lock_blob", {"sha256": sha}, tx=tx):
                continue
            used = self.sql.run("blob_in_use", {"sha256": sha, "now": self._now()}, tx=tx)
            if not used[0]["used"]:
                delete_object(sha)
                self.sql.run("delete_blob", {"sha256": sha}, tx=tx)
                gone.append(sha)
        return gone

    # -- reads -----------------------------------------------------------------

    def get(self, artifact_id: int, tenant: str | None = None) -> Artifact:
        rows = self.sql.run("get_artifact", {"id": artifact_id, "tenant": tenant})
        if not rows:
            raise ArtifactNotFound(f"artifact {artifact_id} not found",
                                   detail={"id": artifact_id})
        return self._artifact(rows[0])

    def by_name(self, job_id: int, name: str, tenant: str | None = None) -> Artifact:
        rows = self.sql.run("job_artifact", {"job_id": job_id, "name": name})
        if not rows or (tenant is not None and rows[0]["tenant"] != tenant):
            raise ArtifactNotFound(f"job {job_id} has no artifact named {name!r}",
                                   detail={"job_id": job_id, "name": name[:80]})
        return self._artifact(rows[0])

    def find(self, tenant: str, name: str) -> Artifact | None:
        rows = self.sql.run("find_by_name", {"tenant": tenant, "name": name})
        return self._artifact(rows[0]) if rows else None

    def for_job(self, job_id: int, tenant: str | None = None) -> list[Artifact]:
        rows = self.sql.run("job_artifacts", {"job_id": job_id, "tenant": tenant})
        return [self._artifact(r) for r in rows]
