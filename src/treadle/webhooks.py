"""Signed webhooks: outbound job callbacks and the helpers receivers use to check them.

Signature scheme (ADR 0303), the same for callbacks we send and inbound hooks we
accept::

    Treadle-Timestamp: <unix seconds>
    Treadle-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

Signing the timestamp with the body lets a receiver refuse replays older than a
tolerance window. Delivery is at least once: receivers deduplicate on
``Treadle-Delivery-Id`` (stable across retries of one delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from treadle.context import JobContext
from treadle.core.errors import InvalidInput, Permanent, RateLimited, Transient
from treadle.core.retry import RetryPolicy
from treadle.egress import REFUSED, EgressError, Response

if TYPE_CHECKING:
    from treadle.app import Treadle

SIGNATURE_HEADER = "Treadle-Signature"
TIMESTAMP_HEADER = "Treadle-Timestamp"
DELIVERY_HEADER = "Treadle-Delivery-Id"
JOB_HEADER = "Treadle-Job-Id"
DELIVER_TASK = "treadle.deliver_callback"
CALLBACK_QUEUE = "treadle.callbacks"
DEFAULT_TOLERANCE = 300.0
# Backoff between delivery attempts: 1, 2, 4 … capped at 60 s, with full jitter;
# with the store's 11 attempts a receiver may be down for several minutes.
DELIVERY_POLICY = RetryPolicy(base=1.0, factor=2.0, cap=60.0)
DELIVERY_TIMEOUT = 10.0
_log = logging.getLogger("treadle.webhooks")

__all__ = [
    "CALLBACK_QUEUE",
    "DELIVERY_POLICY",
    "DELIVER_TASK",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureError",
    "callback_body",
    "register_builtin_tasks",
    "sign",
    "signed_headers",
    "verify",
]


class SignatureError(InvalidInput):
    """A webhook's signature is missing, malformed, wrong or too old."""


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str | bytes, body: bytes | str, timestamp: int | str) -> str:
    """The ``Treadle-Signature`` value for ``body`` sent at ``timestamp``."""
    message = _as_bytes(str(timestamp)) + b"." + _as_bytes(body)
    return "v1=" + hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str | bytes, body: bytes | str, *, now: float | None = None
) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, body, ts)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def verify(
    secret: str | bytes,
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    *,
    signature: str | None = None,
    timestamp: str | int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``body`` was signed with ``secret`` recently.

    Give either the request ``headers`` or ``signature`` and ``timestamp``.
    ``body`` must be the raw bytes received, not re-serialised JSON.
    """
    if headers is not None:
        signature = signature or _header(headers, SIGNATURE_HEADER)
        timestamp = timestamp if timestamp is not None else _header(headers, TIMESTAMP_HEADER)
    if not signature or timestamp is None:
        raise SignatureError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        ts = int(str(timestamp))
    except ValueError:
        raise SignatureError("malformed timestamp") from None
    current = time.time() if now is None else now
    if tolerance >= 0 and abs(current - ts) > tolerance:
        raise SignatureError(f"timestamp is outside the {tolerance:.0f}s tolerance")
    expected = sign(secret, body, ts)
    # A header may carry several signatures (secret rotation): any match is enough.
    candidates = [s.strip() for s in signature.split(",")]
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")


def callback_body(job_json: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a finished job."""
    return json.dumps(job_json, separators=(",", ":"), sort_keys=True).encode("utf-8")


def register_builtin_tasks(
    treadle: Treadle,
    secret: str | None,
    *,
    retry_policy: RetryPolicy = DELIVERY_POLICY,
    timeout: float = DELIVERY_TIMEOUT,
) -> None:
    """Register ``treadle.deliver_callback`` on ``treadle`` (idempotent).

    The store enqueues one delivery job per finished job that has a
    ``callback_url``, in the same transaction as its final state; a worker
    subscribed to ``treadle.callbacks`` runs it with this policy.
    """
    if DELIVER_TASK in treadle.tasks:
        return
    if not secret:
        # Deliver anyway (a callback is still wanted) but say loudly that it is unsigned.
        _log.warning("no webhook secret (TREADLE_WEBHOOK_SECRET): callbacks are sent UNSIGNED")

    def deliver_callback(job_id: int, ctx: JobContext) -> dict[str, Any]:
        job = treadle.get_job(int(job_id))
        if not job.callback_url:
            return {"delivered": False, "reason": "job has no callback_url"}
        body = callback_body(job.to_json())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "treadle-callbacks/1",
            JOB_HEADER: str(job.id),
            DELIVERY_HEADER: str(ctx.job.id),
            **(signed_headers(secret, body) if secret else {}),
        }
        # A span per delivery attempt, in the finished job's trace (ADR 0021); the
        # receiver gets its traceparent to continue it.
        with ctx.span("callback delivery", {"treadle.job_id": job.id}) as span:
            trace = treadle.tracing.current_traceparent()
            if trace is not None:
                headers["traceparent"] = trace
            try:
                # The egress policy of the app (ADR 0305): resolved, checked, connected to
                # the checked address; redirects are not followed.
                resp = treadle.egress.request("POST", job.callback_url, content=body,
                                              headers=headers, timeout=timeout,
                                              max_bytes=64 << 10)
            except EgressError as exc:
                # One message whatever happened (no port-open oracle); only the class
                # differs: a refused address will stay refused, a failed one may recover.
                cls = Transient if not exc.permanent else Permanent
                span.fail("not delivered")
                raise cls(f"callback not delivered: {REFUSED}") from None
            span.set("http.response.status_code", resp.status)
        status = resp.status
        if 200 <= status < 300:
            return {"delivered": True, "status": status, "attempt": ctx.attempt}
        if status == 429:
            raise RateLimited("receiver answered 429", retry_after=_retry_after(resp))
        if status in (408, 425) or status >= 500:
            raise Transient(f"receiver answered {status}", detail={"status": status})
        # Any other 4xx (and a redirect we do not follow) will not change by retrying.
        raise Permanent(f"receiver refused the callback with {status}", detail={"status": status})

    treadle.task(
        name=DELIVER_TASK, queue=CALLBACK_QUEUE, retries=10, timeout=timeout + 5.0,
        retry_policy=retry_policy, pass_context=True,
    )(deliver_callback)


def _retry_after(resp: Response) -> float | None:
    value = next((v for k, v in resp.headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    # A receiver's header is not ours to trust: NaN means nothing, a negative wait none.
    return None if seconds is None or seconds != seconds else min(max(seconds, 0.0), 3600.0)
