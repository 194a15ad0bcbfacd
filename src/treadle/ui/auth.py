"""Who may do what in the UI: API-key login through the HTTP API's own auth.

The UI never has its own notion of keys. ``authenticate`` delegates to
``treadle.api.auth.authenticate(treadle, raw_key)`` so a key works (and is revoked) the same
way in the UI as in the API; the permission checks below mirror the API's scopes
(``read``, ``submit``, ``admin``; see ``treadle.api.keystore.SCOPES``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from treadle.core.job import DEFAULT_TENANT
from treadle.ui.session import SessionUser

if TYPE_CHECKING:
    from treadle.app import Treadle

ADMIN_KEY_ENV = "TREADLE_ADMIN_KEY"


class PrincipalLike(Protocol):
    @property
    def tenant(self) -> str: ...

    @property
    def scopes(self) -> Collection[str]: ...


@dataclass(frozen=True)
class _Principal:
    tenant: str
    scopes: frozenset[str]


def authenticate(treadle: Treadle, raw_key: str, config: Any = None) -> PrincipalLike | None:
    """The principal a raw API key stands for, or None if it is not a valid key.

    ``config`` is the API's ``ApiConfig`` (``app.state.api_config``): it holds the
    ``TREADLE_ADMIN_KEY`` bootstrap key, so the UI accepts exactly the keys the API does.
    """
    raw_key = raw_key.strip()
    if not raw_key or len(raw_key) > 512:
        return None
    try:
        from treadle.api import auth as api_auth
    except ImportError:
        return _bootstrap_only(raw_key)
    fn: Any = getattr(api_auth, "authenticate", None)
    if fn is None:
        return _bootstrap_only(raw_key)
    principal: PrincipalLike | None = fn(treadle, raw_key, config)
    return principal


def _bootstrap_only(raw_key: str) -> PrincipalLike | None:
    """Without the API package, accept only ``TREADLE_ADMIN_KEY`` (bootstrap key, ADR 0302)."""
    admin = os.environ.get(ADMIN_KEY_ENV)
    if admin and hmac.compare_digest(admin.encode(), raw_key.encode()):
        return _Principal(DEFAULT_TENANT, frozenset({"admin", "submit", "read"}))
    return None


def can_read(scopes: Collection[str]) -> bool:
    """Logging in to the UI needs what reading through the API needs."""
    return bool(set(scopes) & {"read", "admin"})


def can_write_jobs(user: SessionUser) -> bool:
    """Submit, retry, cancel: what the API allows a ``submit`` key to do to its own jobs."""
    return bool(user.scopes & {"submit", "admin"})


def can_steer_queues(user: SessionUser) -> bool:
    """Queues are shared by every tenant, so pausing or limiting one is an admin action."""
    return user.is_admin
