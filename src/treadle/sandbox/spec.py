"""Dynamic-worker specification, its content-derived id, and the result of a run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from treadle.core.errors import InvalidInput
from treadle.core.storable import is_valid_text
from treadle.sandbox.limits import Limits

Language = Literal["javascript", "python"]
Mode = Literal["load", "get"]
LANGUAGES: tuple[Language, ...] = ("javascript", "python")
MAX_CODE_BYTES = 1 << 20


@dataclass(frozen=True)
class WorkerSpec:
    """Code + language + limits + bindings: everything that identifies a dynamic worker.

    ``fetch_allow`` is the egress allow-list for ``env.fetch``: bare host names
    (``"api.example.com"``, any http/https URL on that host) or URL prefixes
    (``"http://127.0.0.1:8080/v1/"``). Empty means ``env.fetch`` does not exist.
    ``kv`` gives the code ``env.kv``, a key-value store scoped to the calling tenant.
    ``allow_wasm`` keeps ``WebAssembly``/``SharedArrayBuffer`` in JavaScript isolates.
    """

    code: str
    language: Language
    limits: Limits = field(default_factory=Limits)
    allow_wasm: bool = False
    fetch_allow: tuple[str, ...] = ()
    kv: bool = False

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise InvalidInput(f"language must be one of {LANGUAGES}, got {self.language!r}")
        if not isinstance(self.code, str) or not self.code.strip():
            raise InvalidInput("code must be a non-empty string")
        if len(self.code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            raise InvalidInput(f"code is larger than {MAX_CODE_BYTES} bytes")
        if "\x00" in self.code:
            raise InvalidInput("code must not contain NUL characters")
        if not is_valid_text(self.code):  # it is stored (ADR 0006)
            raise InvalidInput("code must be valid Unicode text (no lone surrogates)")
        if not isinstance(self.limits, Limits):
            raise InvalidInput("limits must be a Limits instance")
        allow = tuple(self.fetch_allow)
        for entry in allow:
            if (not isinstance(entry, str) or not entry.strip() or not is_valid_text(entry)
                    or any(c.isspace() for c in entry)):
                raise InvalidInput(f"fetch_allow entries must be host names or URLs: {entry!r}")
        object.__setattr__(self, "fetch_allow", tuple(sorted(set(allow))))


def worker_id(spec: WorkerSpec) -> str:
    """A stable id: the same code and configuration always give the same id, any change a new one.

    Hashes a canonical JSON of code, language, limits and bindings (versioned, so a change
    of this scheme can never silently alias old ids).
    """
    canonical = json.dumps(
        {
            "v": 1,
            "code": spec.code,
            "language": spec.language,
            "limits": spec.limits.to_dict(),
            "allow_wasm": spec.allow_wasm,
            "fetch_allow": list(spec.fetch_allow),
            "kv": spec.kv,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return "dw_" + digest[:24]


@dataclass
class RunResult:
    """What a successful run produced.

    ``start_ms`` is the time from the request to user code starting (sandbox acquisition
    included); ``duration_ms`` the whole request, end to end. ``reused`` says whether a
    ``get`` found a warm instance (a ``load`` is never reused).
    """

    output: Any
    logs: list[str]
    duration_ms: float
    start_ms: float
    mode: Mode
    reused: bool
    worker_id: str = ""
    host_calls: int = 0
    # What the run cost in its sandbox (usage accounting, ADR 0022); None: not measured.
    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None


@dataclass
class RunUsage:
    """Filled by the host during one run: the sandbox's CPU for the run and its peak
    resident memory (Python: the interpreter's high-water mark, which for a warm ``get``
    instance spans its earlier runs too; JavaScript: not measured, hosts are shared)."""

    cpu_seconds: float | None = None
    peak_memory_bytes: int | None = None
