"""API keys, idempotency fingerprints and inbound hook bindings, over either store.

These tables belong to the HTTP API (migration 0002), not to the job core, so
they have their own named queries (``api_queries.sql`` per backend) and this
small adapter instead of growing the ``Store`` protocol.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from treadle.api.keycache import KeyCache
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ConfigurationError
from treadle.store import Store
from treadle.store.base import Transaction
from treadle.store.extension import ExtensionSql

SCOPES = frozenset({"submit", "read", "admin"})
KEY_PREFIX = "trd_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    scopes: frozenset[str]
    name: str | None = None
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "name": self.name,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class Hook:
    name: str
    tenant: str
    task: str
    queue: str | None
    secret: str
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        # The secret is never echoed after creation.
        return {
            "name": self.name,
            "tenant": self.tenant,
            "task": self.task,
            "queue": self.queue,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def hash_key(raw: str) -> str:
    """Keys carry 256 random bits, so a plain SHA-256 is enough (ADR 0302): no
    dictionary to attack, and lookup stays one indexed equality per request."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_raw_key() -> tuple[str, str]:
    """(key id, full secret key). The id is public; the key is shown once."""
    key_id = "key_" + secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"


def parse_scopes(value: str | Sequence[str]) -> frozenset[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    scopes = frozenset(s.strip() for s in items if s.strip())
    unknown = scopes - SCOPES
    if unknown or not scopes:
        raise ConfigurationError(
            f"scopes must be a non-empty subset of {sorted(SCOPES)}; got {sorted(scopes)}"
        )
    return scopes


class KeyStore:
    """Backend-neutral: the named queries run through the store's extension seam."""

    def __init__(self, store: Store, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self._sql = ExtensionSql(store, "api_queries.sql")
        self.cache = KeyCache(clock)  # valid keys recently read (ADR 0033)

    def _now(self) -> Any:
        return self._sql.ts_in(self._sql.now())

    # -- keys -----------------------------------------------------------------

    def create_key(
        self, tenant: str, scopes: str | Sequence[str], name: str | None = None
    ) -> tuple[ApiKey, str]:
        from treadle.core.job import validate_name

        validate_name("tenant", tenant)
        if name is not None:  # a label shown in lists: printable, like every name
            validate_name("key name", name)
        scope_set = parse_scopes(scopes)
        key_id, raw = new_raw_key()
        self._sql.run(
            "insert_key",
            {"id": key_id, "tenant": tenant, "scopes": ",".join(sorted(scope_set)),
             "key_hash": hash_key(raw), "name": name, "now": self._now()},
            write=True,
        )
        return ApiKey(key_id, tenant, scope_set, name, datetime.now(UTC)), raw

    def lookup(self, raw: str) -> ApiKey | None:
        """The key as stored now (one read)."""
        return self._read(hash_key(raw))

    def lookup_cached(self, raw: str, ttl: float) -> ApiKey | None:
        """The key, from a read at most ``ttl`` seconds old if it was valid then (a key
        revoked by another process may go on working that long); else read now."""
        key_hash = hash_key(raw)
        key = self.cache.get(key_hash, ttl) if ttl > 0 else None
        if key is not None:
            return key
        started = self.cache.start_read()
        key = self._read(key_hash)
        if key is not None and ttl > 0:
            self.cache.put(key_hash, key, started)
        return key

    def cached(self, raw: str, ttl: float) -> ApiKey | None:
        """The key if a read at most ``ttl`` seconds old found it valid; no read."""
        return self.cache.get(hash_key(raw), ttl) if ttl > 0 else None

    def _read(self, key_hash: str) -> ApiKey | None:
        rows = self._sql.run("key_by_hash", {"key_hash": key_hash}, write=False)
        if not rows:
            return None
        r = rows[0]
        return ApiKey(r["id"], r["tenant"], frozenset(r["scopes"].split(",")),
                      revoked_at=self._sql.ts_out(r["revoked_at"]))

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return [
            ApiKey(r["id"], r["tenant"], frozenset(r["scopes"].split(",")), r["name"],
                   self._sql.ts_out(r["created_at"]), self._sql.ts_out(r["revoked_at"]))
            for r in self._sql.run("list_keys", {"tenant": tenant}, write=False)
        ]

    def revoke(self, key_id: str) -> bool:
        """True if the key exists (revoking twice is not an error). Refused here at once;
        in other processes within their cache's time to live (ADR 0033)."""
        self.cache.forget(key_id)  # before and after: a read in flight may not cache it
        self._sql.run("revoke_key", {"id": key_id, "now": self._now()}, write=True)
        self.cache.forget(key_id)
        return bool(self._sql.run("key_exists", {"id": key_id}, write=False))

    # -- idempotency ----------------------------------------------------------

    def claim_idempotency(
        self, tenant: str, key: str, fingerprint: str, *, tx: Transaction | None = None
    ) -> str:
        """Record what ``key`` is first used for; return the fingerprint it stands for.

        Inside ``tx`` (the submission's own transaction, ADR 0019) the claim commits or
        rolls back with the job."""
        params = {"tenant": tenant, "key": key, "fingerprint": fingerprint, "now": self._now()}
        self._sql.run("claim_idempotency", params, write=True, tx=tx)
        rows = self._sql.run("idempotency_fingerprint", params, write=False, tx=tx)
        return str(rows[0]["fingerprint"]) if rows else fingerprint

    # -- inbound hooks --------------------------------------------------------

    def put_hook(self, hook: Hook) -> bool:
        """Create or replace a binding; False if the name belongs to another tenant."""
        rows = self._sql.run(
            "upsert_hook",
            {"name": hook.name, "tenant": hook.tenant, "task": hook.task, "queue": hook.queue,
             "secret": hook.secret, "now": self._now()},
            write=True,
        )
        return bool(rows)

    def get_hook(self, name: str) -> Hook | None:
        rows = self._sql.run("get_hook", {"name": name}, write=False)
        return self._hook(rows[0]) if rows else None

    def list_hooks(self, tenant: str) -> list[Hook]:
        return [self._hook(r) for r in self._sql.run("list_hooks", {"tenant": tenant}, write=False)]

    def delete_hook(self, name: str, tenant: str) -> bool:
        existed = self.get_hook(name)
        if existed is None or existed.tenant != tenant:
            return False
        self._sql.run("delete_hook", {"name": name, "tenant": tenant}, write=True)
        return True

    def _hook(self, r: Mapping[str, Any]) -> Hook:
        return Hook(r["name"], r["tenant"], r["task"], r["queue"], r["secret"],
                    self._sql.ts_out(r["created_at"]))


def open_keystore(store: Store, clock: Clock = SYSTEM_CLOCK) -> KeyStore:
    return KeyStore(store, clock)
