"""Capabilities handed to sandboxed code through ``env``, all executed by the host.

Sandboxed code has no network and no file system. What it may do outside is a *host call*
sent over the pipe: ``kv.get``/``kv.put``/``kv.delete`` on the tenant's store, ``fetch``
through the worker's egress allow-list and the host's egress policy (``treadle.egress``),
and ``emit`` onto the job's live stream (ADR 0011, ADR 0020). Every call but ``emit`` is
counted against ``Limits.max_host_calls``; the arguments are untrusted input and are
checked here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from treadle.core.errors import TreadleError
from treadle.core.storable import is_valid_text
from treadle.egress import REFUSED, AllowList, EgressError, EgressPolicy, parse_url
from treadle.sandbox import wirejson
from treadle.sandbox.limits import Limits
from treadle.sandbox.spec import WorkerSpec

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1 << 20
# ``env.emit`` data travels as JSON text of at most this many characters; the boots refuse
# more before sending. A frame may carry it escaped (up to 6 bytes a character), so the
# hosts' frame cap grows by EMIT_FRAME_BYTES. The stream's own per-item cap (64 KiB by
# default, counted in UTF-8) is applied by the sink, the job's stream writer.
EMIT_MAX_CHARS = 1 << 16
EMIT_FRAME_BYTES = 6 * EMIT_MAX_CHARS + (4 << 10)


class KVStore(Protocol):
    """A string key-value store already scoped to one tenant."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryKV:
    """A process-local KV backend; ``for_tenant`` gives each tenant a disjoint view."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def for_tenant(self, tenant: str) -> KVStore:
        return _TenantKV(self, tenant)

    def _get(self, tenant: str, key: str) -> str | None:
        with self._lock:
            return self._data.get((tenant, key))

    def _put(self, tenant: str, key: str, value: str) -> None:
        with self._lock:
            self._data[(tenant, key)] = value

    def _delete(self, tenant: str, key: str) -> None:
        with self._lock:
            self._data.pop((tenant, key), None)


@dataclass(frozen=True)
class _TenantKV:
    backend: MemoryKV
    tenant: str

    def get(self, key: str) -> str | None:
        return self.backend._get(self.tenant, key)

    def put(self, key: str, value: str) -> None:
        self.backend._put(self.tenant, key, value)

    def delete(self, key: str) -> None:
        self.backend._delete(self.tenant, key)


@dataclass
class Bindings:
    """Per-run capabilities. ``kv`` must already be scoped to the run's tenant.

    Leave ``kv`` unset to use the manager's store for the tenant. ``fetch`` is only
    available when the worker has a non-empty ``fetch_allow``, and then only to addresses
    ``egress`` allows (by default: public addresses only; see ADR 0305).
    """

    kv: KVStore | None = None
    # ``env.emit(kind, data)``: where items go (the job's stream: ``ctx.emit``). Unset:
    # the call is refused with a clear message (a sandbox run outside a job).
    emit: Callable[[str, Any], None] | None = None
    fetch_timeout: float = 10.0
    fetch_max_bytes: int = 1 << 20
    egress: EgressPolicy = field(default_factory=EgressPolicy)


class HostCallError(Exception):
    """A refused or failed host call; the message is shown to the sandboxed code."""


class HostCallLimit(HostCallError):
    """More host calls than ``Limits.max_host_calls``."""


def url_allowed(url: str, allow: tuple[str, ...]) -> bool:
    """True when ``url`` is http(s) and, normalised, matches a host name or URL prefix in
    ``allow`` (the address policy is checked separately, when the call is made)."""
    try:
        return AllowList.parse(allow).matches(parse_url(url))
    except EgressError:
        return False


class HostCalls:
    """Executes the host calls of one run, counting them against the limit."""

    def __init__(
        self, spec: WorkerSpec, limits: Limits, bindings: Bindings, kv: KVStore | None
    ) -> None:
        self.spec = spec
        self.limits = limits
        self.bindings = bindings
        self.kv = kv
        self.count = 0
        self.limit_hit = False
        self._allow: AllowList | None = None

    def handle(self, op: Any, args: Any) -> Any:
        """Run one call; raises :class:`HostCallError` with a message for the code."""
        if op == "emit":
            # Not a subrequest: an append to the job's in-memory stream buffer, bounded by
            # the stream's caps (pending items, item size) and the run's time limits, so a
            # worker may stream many items (tokens, rows) without using up its calls.
            return self._emit(args if isinstance(args, list) else [])
        self.count += 1
        if self.count > self.limits.max_host_calls:
            self.limit_hit = True
            raise HostCallLimit(f"host call limit of {self.limits.max_host_calls} exceeded")
        if not isinstance(args, list):
            raise HostCallError("malformed host call")
        if op in ("kv.get", "kv.put", "kv.delete"):
            return self._kv(op, args)
        if op == "fetch":
            return self._fetch(args)
        raise HostCallError(f"unknown binding {op!r}")

    def _kv(self, op: str, args: list[Any]) -> Any:
        if not self.spec.kv or self.kv is None:
            raise HostCallError("env.kv is not bound for this worker")
        # Text a store cannot hold (lone surrogates, NUL) is the code's mistake (ADR 0006).
        if (not args or not isinstance(args[0], str) or not is_valid_text(args[0])
                or len(args[0].encode()) > MAX_KEY_BYTES):
            raise HostCallError(
                f"kv keys must be valid Unicode strings without NUL, of at most "
                f"{MAX_KEY_BYTES} bytes")
        key = args[0]
        if op == "kv.get":
            return self.kv.get(key)
        if op == "kv.delete":
            self.kv.delete(key)
            return None
        if len(args) < 2 or not isinstance(args[1], str) or not is_valid_text(args[1]):
            raise HostCallError("kv values must be valid Unicode strings without NUL")
        if len(args[1].encode()) > MAX_VALUE_BYTES:
            raise HostCallError(f"kv values are limited to {MAX_VALUE_BYTES} bytes")
        self.kv.put(key, args[1])
        return None

    def _emit(self, args: list[Any]) -> None:
        sink = self.bindings.emit
        if sink is None:
            raise HostCallError("env.emit is not bound: this run is not a job with a stream")
        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
            raise HostCallError("env.emit takes (kind, data)")
        kind, text = args
        if len(text) > EMIT_MAX_CHARS:
            raise HostCallError(f"env.emit data is over {EMIT_MAX_CHARS} characters of JSON")
        try:
            data = wirejson.loads(text)
        except wirejson.UnsafeJSON as exc:
            raise HostCallError(f"env.emit data cannot be stored: {exc}") from None
        try:
            # Kind, storability (lone surrogates, NUL), the per-item and pending caps: the
            # stream's own checks, with their classified messages (ADR 0011).
            sink(kind, data)
        except TreadleError as exc:
            raise HostCallError(f"env.emit refused: {exc.message}") from None

    def _fetch(self, args: list[Any]) -> Any:
        if not self.spec.fetch_allow:
            raise HostCallError("env.fetch is not bound for this worker (no egress allowed)")
        url, method, headers, body = (list(args) + [None] * 4)[:4]
        method = str(method or "GET").upper()
        if method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            raise HostCallError(f"unsupported fetch method {method!r}")
        hdrs = (
            {str(k): str(v) for k, v in (headers or {}).items()}
            if isinstance(headers, dict)
            else {}
        )
        data = None if body is None else str(body).encode("utf-8", "replace")
        if self._allow is None:
            self._allow = AllowList.parse(self.spec.fetch_allow)
        try:
            # Allow-list, address policy, connection and size: one message for every
            # refusal and failure, so the code learns nothing about the host's ports.
            resp = self.bindings.egress.request(
                method, url, headers=hdrs, content=data, timeout=self.bindings.fetch_timeout,
                max_bytes=self.bindings.fetch_max_bytes, allow=self._allow,
            )
        except EgressError:
            raise HostCallError(REFUSED) from None
        body_text = resp.body.decode("utf-8", "replace")
        return {"status": resp.status, "headers": resp.headers, "body": body_text}
