"""Where a pipeline's input comes from, and local copies of stored objects.

A source is one of:
- ``{"artifact": id}``: an artifact of the same tenant (HTTP, CLI, Python);
- ``{"url": "https://…"}``: fetched under the egress policy (loopback and private
  addresses refused), streamed to a file in the step's work folder, at most
  ``max_bytes`` (``MAX_URL_BYTES`` unless ``register(app, max_url_bytes=...)``);
- ``{"sha256": hex, "name": "in.mp4"}``: bytes the CLI or the Python API already put in
  the artifact store. Trusted surfaces only: a request over HTTP cannot name one.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from treadle.artifacts.blobstore import check_sha256
from treadle.artifacts.service import ArtifactService
from treadle.core.errors import InvalidInput

MAX_URL_BYTES = 4 << 30  # the body streams to disk; the cap bounds the disk, not memory
URL_TIMEOUT = 120.0
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_source(source: Any, *, trusted: bool) -> dict[str, Any]:
    if not isinstance(source, dict) or len(source) == 0:
        raise InvalidInput("source must be {\"artifact\": id} or {\"url\": \"https://...\"}")
    if set(source) not in ({"artifact"}, {"url"}, {"sha256"}, {"sha256", "name"}):
        # One source, nothing else: a second or unknown key would be dropped unseen.
        raise InvalidInput("source must be one of {\"artifact\": id} or {\"url\": ...}, "
                           "with no other keys")
    if "artifact" in source:
        ident = source["artifact"]
        if isinstance(ident, bool) or not isinstance(ident, int) or not 1 <= ident < 2**63:
            raise InvalidInput("source.artifact must be an artifact id")
        return {"artifact": ident}
    if "url" in source:
        url = source["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) \
                or len(url) > 2048 or not url.isprintable():
            raise InvalidInput("source.url must be an http(s) URL (at most 2048 characters)")
        return {"url": url}
    if "sha256" in source and trusted:
        return {"sha256": check_sha256(source["sha256"]),
                "name": safe_filename(str(source.get("name") or "input"))}
    raise InvalidInput("source must be {\"artifact\": id} or {\"url\": \"https://...\"}")


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _SAFE.sub("_", base).strip("._")[:100]
    return cleaned or "input"


def local_copy(svc: ArtifactService, sha256: str, workdir: Path) -> Path:
    """A readable local file with the object's bytes: the object itself on the local
    store, else a copy in ``workdir`` (downloaded once)."""
    direct = svc.backend.local_path(sha256)
    if direct is not None:
        return direct
    path = workdir / "blobs" / sha256
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        svc.backend.download(sha256, path)
    return path


def fetch_url(url: str, workdir: Path, policy: Any, *, max_bytes: int = MAX_URL_BYTES
              ) -> Path:
    """GET ``url`` under the egress policy, streamed into a file of ``workdir`` (never
    whole in memory). A refused, failing or oversized URL is invalid input, with the
    policy's one message (it never says which it was); no partial file is left."""
    from treadle.egress import EgressError

    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="url-", suffix=".part", dir=workdir)
    path = Path(name)
    try:
        with os.fdopen(fd, "w+b") as f:
            try:
                response = policy.request("GET", url, timeout=URL_TIMEOUT,
                                          max_bytes=max_bytes, sink=f)
            except EgressError as exc:
                raise InvalidInput(f"source URL: {exc}", detail={"url": url[:200]}) from None
        if response.status != 200:
            raise InvalidInput(f"source URL answered HTTP {response.status}",
                               detail={"url": url[:200], "status": response.status})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path
