"""Rows of dynamic workers and of the tenant KV store, over either store backend.

These tables belong to dynamic workers, not to the job core, so this package owns their
named queries (``treadle/dynamic/sql/<backend>/queries.sql``) and runs them through this
small adapter instead of growing the ``Store`` protocol (ADR 0008).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from treadle.core.errors import InvalidInput
from treadle.core.storable import is_valid_text
from treadle.sandbox import Limits, WorkerSpec
from treadle.store import Store
from treadle.store.extension import ExtensionSql

SQL_PACKAGE = "treadle.dynamic.sql"


@dataclass(frozen=True)
class DynamicWorker:
    """A registered dynamic worker: its spec (what runs) plus who owns it and a label."""

    id: str
    tenant: str
    spec: WorkerSpec
    name: str | None = None
    created_at: datetime | None = None

    @property
    def language(self) -> str:
        return self.spec.language

    @property
    def code(self) -> str:
        return self.spec.code

    @property
    def limits(self) -> Limits:
        return self.spec.limits

    def to_json(self, *, code: bool = True) -> dict[str, Any]:
        """The worker as JSON (API, CLI ``--json``); ``code=False`` leaves the source out."""
        data: dict[str, Any] = {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "language": self.spec.language,
            "limits": self.spec.limits.to_dict(),
            "config": config_of(self.spec),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }
        if code:
            data["code"] = self.spec.code
        return data


def config_of(spec: WorkerSpec) -> dict[str, Any]:
    """The bindings part of a spec, as stored in the ``config`` column."""
    return {"allow_wasm": spec.allow_wasm, "fetch_allow": list(spec.fetch_allow), "kv": spec.kv}


class DynamicRepo:
    """Backend-neutral: the named queries run through the store's extension seam."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sql = ExtensionSql.of_package(store, SQL_PACKAGE)

    def _now(self) -> Any:
        return self._sql.ts_in(self._sql.now())

    # -- workers --------------------------------------------------------------

    def upsert_worker(
        self, wid: str, tenant: str, spec: WorkerSpec, name: str | None
    ) -> DynamicWorker:
        rows = self._sql.run(
            "upsert_worker",
            {"tenant": tenant, "id": wid, "name": name, "language": spec.language,
             "code": spec.code, "limits": self._sql.json_in(spec.limits.to_dict()),
             "config": self._sql.json_in(config_of(spec)), "now": self._now()},
            write=True,
        )
        return self._worker(rows[0])

    def get_worker(self, tenant: str, wid: str) -> DynamicWorker | None:
        rows = self._sql.run("get_worker", {"tenant": tenant, "id": wid}, write=False)
        return self._worker(rows[0]) if rows else None

    def list_workers(self, tenant: str, limit: int) -> list[DynamicWorker]:
        rows = self._sql.run("list_workers", {"tenant": tenant, "limit": limit}, write=False)
        return [self._worker(r) for r in rows]

    def _worker(self, r: Mapping[str, Any]) -> DynamicWorker:
        config = self._sql.json_out(r["config"])
        spec = WorkerSpec(
            code=r["code"],
            language=r["language"],
            limits=Limits.from_dict(self._sql.json_out(r["limits"])),
            allow_wasm=bool(config.get("allow_wasm", False)),
            fetch_allow=tuple(config.get("fetch_allow", ())),
            kv=bool(config.get("kv", False)),
        )
        created = self._sql.ts_out(r["created_at"])
        return DynamicWorker(r["id"], r["tenant"], spec, r["name"], created)

    # -- kv -------------------------------------------------------------------

    def kv_get(self, tenant: str, key: str) -> str | None:
        rows = self._sql.run("kv_get", {"tenant": tenant, "key": key}, write=False)
        return str(rows[0]["value"]) if rows else None

    def kv_put(self, tenant: str, key: str, value: str) -> None:
        self._sql.run(
            "kv_put", {"tenant": tenant, "key": key, "value": value, "now": self._now()},
            write=True,
        )

    def kv_delete(self, tenant: str, key: str) -> None:
        self._sql.run("kv_delete", {"tenant": tenant, "key": key}, write=True)

    def kv_for_tenant(self, tenant: str) -> StoreKV:
        return StoreKV(self, tenant)


@dataclass(frozen=True)
class StoreKV:
    """``sandbox.KVStore`` over the ``treadle_kv`` table, fixed to one tenant.

    Each call is its own short transaction: host calls arrive one at a time from a run, and
    a run that fails later keeps what it wrote (as with Cloudflare KV; there is no rollback).
    """

    repo: DynamicRepo
    tenant: str

    def get(self, key: str) -> str | None:
        return self.repo.kv_get(self.tenant, _text(key))

    def put(self, key: str, value: str) -> None:
        self.repo.kv_put(self.tenant, _text(key), _text(value))

    def delete(self, key: str) -> None:
        self.repo.kv_delete(self.tenant, _text(key))


def _text(value: str) -> str:
    # Keys and values come from sandboxed code; a store cannot hold what is refused here.
    if not is_valid_text(value):
        raise InvalidInput("kv keys and values must be valid Unicode text without NUL")
    return value


def open_repo(store: Store) -> DynamicRepo:
    return DynamicRepo(store)
