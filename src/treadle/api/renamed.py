"""Old API paths that still answer, marked deprecated (ADR 0023).

A plug-in that renames its routes lists :class:`~treadle.kinds.RenamedPrefix` values in
``api_old_prefixes``. A request under an old prefix is served by the new route, as if it
had been sent there (one handler, so both spellings behave the same, errors included),
and every answer carries ``Deprecation`` (RFC 9745: the date the old path was deprecated)
and ``Link: <new path>; rel="successor-version"``. The old paths are not in the OpenAPI
document: new clients only see the new names.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import quote

from treadle.api.metrics import ASGIApp, Scope
from treadle.kinds import RenamedPrefix


class RenamedPaths:
    """ASGI middleware: serve old prefixes by their new routes, answers marked deprecated."""

    def __init__(self, app: ASGIApp, renamed: Iterable[RenamedPrefix]) -> None:
        self.app = app
        self.renamed = tuple(renamed)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for r in self.renamed:
            new_path = r.rewrite(scope["path"])
            if new_path is not None:
                break
        else:
            await self.app(scope, receive, send)
            return
        # The decoded path may hold any character; headers and raw_path are ASCII.
        raw = quote(new_path, safe="/:@!$&'()*+,;=-._~").encode("ascii")
        headers = [
            (b"deprecation", f"@{int(r.since.timestamp())}".encode()),
            (b"link", b"<" + raw + b'>; rel="successor-version"'),
        ]

        async def marked(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        inner = dict(scope, path=new_path, raw_path=raw)
        await self.app(inner, receive, marked)
