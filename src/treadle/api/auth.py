"""Bearer API keys scoped to a tenant (ADR 0302).

``authenticate`` is the one place a raw key becomes a :class:`Principal`; the
HTTP routes use it through :func:`require`, the UI may call it directly (e.g.
on its login form) with the same ``ApiConfig``.
"""

from __future__ import annotations

import hmac
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from treadle.api.config import ApiConfig
from treadle.api.keystore import SCOPES, KeyStore, open_keystore
from treadle.api.problems import Problem
from treadle.core.job import DEFAULT_TENANT
from treadle.store import Store

if TYPE_CHECKING:
    from treadle.app import Treadle

ADMIN_KEY_ID = "env:TREADLE_ADMIN_KEY"
LOOPBACK_KEY_ID = "open-loopback"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer trd_…`")
_keystores: weakref.WeakKeyDictionary[Store, KeyStore] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant and what the key may do there."""

    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None

    def allows(self, scope: str) -> bool:
        # admin implies every other scope: one bootstrap key is enough for scripts.
        return scope in self.scopes or "admin" in self.scopes


def keystore_for(treadle: Treadle) -> KeyStore:
    ks = _keystores.get(treadle.store)
    if ks is None:
        ks = _keystores[treadle.store] = open_keystore(treadle.store, treadle.clock)
    return ks


def _may_be_a_key(raw_key: str | None) -> bool:
    """Whether ``raw_key`` could be any key at all: not empty, at most 512 characters,
    and text that encodes (a lone surrogate cannot be hashed, so it is no key)."""
    if not raw_key or len(raw_key) > 512:
        return False
    try:
        raw_key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def authenticate(
    treadle: Treadle, raw_key: str | None, config: ApiConfig | None = None
) -> Principal | None:
    """The principal a raw API key stands for, or None (unknown, revoked, empty).

    With a ``config``, a key found valid at most ``config.key_cache_seconds`` ago is not
    read again (ADR 0033); without one it is always read."""
    if raw_key is None or not _may_be_a_key(raw_key):
        return None
    if _is_admin_key(raw_key, config):
        return Principal(DEFAULT_TENANT, SCOPES, ADMIN_KEY_ID)
    ttl = config.key_cache_seconds if config is not None else 0.0
    key = keystore_for(treadle).lookup_cached(raw_key, ttl)
    if key is None or key.revoked:
        return None
    return Principal(key.tenant, key.scopes, key.id)


def cached_principal(treadle: Treadle, raw_key: str, config: ApiConfig) -> Principal | None:
    """The principal of an API key found valid at most ``config.key_cache_seconds`` ago,
    or None (then :func:`authenticate` reads it): no database read, so the event loop
    may call it."""
    if not _may_be_a_key(raw_key):
        return None
    key = keystore_for(treadle).cached(raw_key, config.key_cache_seconds)
    return Principal(key.tenant, key.scopes, key.id) if key is not None else None


def _is_admin_key(raw_key: str, config: ApiConfig | None) -> bool:
    return bool(config is not None and config.admin_key and hmac.compare_digest(
        raw_key.encode(), config.admin_key.encode()))


def _principal_without_store(request: Request, raw_key: str | None) -> Principal | None:
    """The principal when no database read is needed (open loopback, the admin key)."""
    config: ApiConfig = request.app.state.api_config
    if raw_key is None and config.open_loopback and is_loopback(request):
        return Principal(DEFAULT_TENANT, SCOPES, LOOPBACK_KEY_ID)
    if raw_key and _may_be_a_key(raw_key) and _is_admin_key(raw_key, config):
        return Principal(DEFAULT_TENANT, SCOPES, ADMIN_KEY_ID)
    if raw_key:
        return cached_principal(request.app.state.treadle, raw_key, config)
    return None


def is_loopback(request: Request) -> bool:
    return request.client is not None and request.client.host in _LOOPBACK_HOSTS


def principal_from_request(request: Request, raw_key: str | None) -> Principal:
    """Authenticate a request or raise a 401 problem."""
    treadle: Treadle = request.app.state.treadle
    config: ApiConfig = request.app.state.api_config
    if raw_key is None and config.open_loopback and is_loopback(request):
        return Principal(DEFAULT_TENANT, SCOPES, LOOPBACK_KEY_ID)
    principal = authenticate(treadle, raw_key, config)
    if principal is None:
        detail = "missing API key" if raw_key is None else "invalid or revoked API key"
        raise Problem(401, f"{detail}: send `Authorization: Bearer <key>`",
                      headers={"WWW-Authenticate": 'Bearer realm="treadle"'})
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's principal, which must hold ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        raw = credentials.credentials if credentials is not None else None
        # An API key is looked up in the database (a thread); the admin key, open
        # loopback and a recently read key need no read, so they skip the thread-pool
        # hop (ADR 0019, ADR 0033).
        principal = _principal_without_store(request, raw)
        if principal is None:
            principal = await run_in_threadpool(principal_from_request, request, raw)
        if not principal.allows(scope):
            raise Problem(403, f"this API key lacks the {scope!r} scope",
                          required_scope=scope)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
