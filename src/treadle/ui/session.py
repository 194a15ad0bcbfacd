"""Signed session cookies, flash messages and CSRF tokens for the control plane.

The session is a stateless signed cookie (HMAC-SHA256), so any number of server processes
can serve the UI given the same secret, and there is no session table to grow. It carries
who the user is (tenant, scopes, a fingerprint of the key), never the API key itself: a
leaked cookie expires, a leaked key would not.

CSRF: authenticated forms carry a token bound to the session id (an HMAC of it), checked on
every POST together with the Origin header. The login form, which has no session yet, uses
a double-submit token in its own short-lived cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "treadle_session"
LOGIN_CSRF_COOKIE = "treadle_login_csrf"
FLASH_COOKIE = "treadle_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 8 * 3600
SECRET_ENV = "TREADLE_UI_SECRET"


@dataclass(frozen=True)
class SessionUser:
    """The logged-in user of one browser session."""

    tenant: str
    scopes: frozenset[str]
    key_id: str  # sha256 prefix of the API key: shown, never reversible
    sid: str
    expires: int

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def tenant_filter(self) -> str | None:
        """The tenant to scope store reads to; None (everything) for admins."""
        return None if self.is_admin else self.tenant


class Signer:
    """HMAC signing of small JSON values, with a purpose label so tokens never cross-verify."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the UI session secret must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def from_env(cls, secret: str | bytes | None = None) -> Signer:
        """Use the given secret, else ``TREADLE_UI_SECRET``, else a per-process random one.

        The random fallback is fine for one process (``treadle up``); several processes
        behind a load balancer must share ``TREADLE_UI_SECRET`` or sessions will not verify.
        """
        value = secret if secret is not None else os.environ.get(SECRET_ENV)
        if value is None:
            return cls(secrets.token_bytes(32))
        return cls(value.encode() if isinstance(value, str) else value)

    def _mac(self, purpose: str, data: bytes) -> str:
        mac = hmac.new(self._secret, purpose.encode() + b"\x00" + data, hashlib.sha256)
        return _b64(mac.digest())

    def sign(self, purpose: str, value: Any) -> str:
        data = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        return _b64(data) + "." + self._mac(purpose, data)

    def unsign(self, purpose: str, token: str | None) -> Any:
        """The signed value, or None when missing, malformed or forged."""
        if not token or "." not in token:
            return None
        body, mac = token.rsplit(".", 1)
        try:
            data = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(purpose, data)):
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    def csrf_for(self, sid: str) -> str:
        return self._mac("csrf", sid.encode())


def key_fingerprint(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()[:12]


def new_session(tenant: str, scopes: frozenset[str], raw_key: str) -> SessionUser:
    return SessionUser(
        tenant=tenant,
        scopes=scopes,
        key_id=key_fingerprint(raw_key),
        sid=secrets.token_urlsafe(18),
        expires=int(time.time()) + SESSION_SECONDS,
    )


def read_session(signer: Signer, request: Request) -> SessionUser | None:
    data = signer.unsign("session", request.cookies.get(SESSION_COOKIE))
    if not isinstance(data, dict):
        return None
    try:
        user = SessionUser(
            tenant=str(data["t"]),
            scopes=frozenset(str(s) for s in data["s"]),
            key_id=str(data["k"]),
            sid=str(data["sid"]),
            expires=int(data["exp"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return user if user.expires > time.time() else None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def write_session(signer: Signer, request: Request, response: Response, user: SessionUser) -> None:
    value = {
        "t": user.tenant, "s": sorted(user.scopes), "k": user.key_id,
        "sid": user.sid, "exp": user.expires,
    }
    response.set_cookie(
        SESSION_COOKIE, signer.sign("session", value), max_age=SESSION_SECONDS,
        httponly=True, samesite="lax", secure=_secure(request), path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def login_csrf(request: Request, response: Response) -> str:
    """The double-submit token of the login form (reused while its cookie lives)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) < 20:
        token = secrets.token_urlsafe(24)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
        secure=_secure(request), path="/login",
    )
    return token


def check_login_csrf(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    return bool(cookie and submitted and hmac.compare_digest(cookie, submitted))


def check_csrf(signer: Signer, request: Request, user: SessionUser, submitted: str | None) -> bool:
    """A POST is genuine if it carries the session's token (form field or HTMX header)."""
    token = submitted or request.headers.get(CSRF_HEADER)
    return bool(token) and hmac.compare_digest(token or "", signer.csrf_for(user.sid))


def same_origin(request: Request) -> bool:
    """Refuse cross-site POSTs outright when the browser tells us the origin (defence in depth)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def set_flash(signer: Signer, request: Request, response: Response, kind: str, text: str) -> None:
    response.set_cookie(
        FLASH_COOKIE, signer.sign("flash", {"kind": kind, "text": text[:500]}), max_age=60,
        httponly=True, samesite="lax", secure=_secure(request), path="/",
    )


def pop_flash(signer: Signer, request: Request, response: Response) -> dict[str, str] | None:
    data = signer.unsign("flash", request.cookies.get(FLASH_COOKIE))
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    if isinstance(data, dict) and {"kind", "text"} <= data.keys():
        return {"kind": str(data["kind"]), "text": str(data["text"])}
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64") from exc
