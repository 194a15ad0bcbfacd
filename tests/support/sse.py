"""A small Server-Sent Events reader for tests (no client library needed)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sse:
    event: str
    data: Any
    id: str | None


def parse(lines: Iterable[str]) -> Iterator[Sse]:
    event = "message"
    data: list[str] = []
    eid: str | None = None
    for line in lines:
        if line == "":
            if data:
                yield Sse(event, json.loads("\n".join(data)), eid)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            eid = value
