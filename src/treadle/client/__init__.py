"""The remote client: the library's shape over the HTTP API (ADR 0020).

>>> from treadle.client import Client
>>> with Client("http://127.0.0.1:8787", api_key) as client:  # doctest: +SKIP
...     job = client.submit("resize", {"image_key": "k", "width": 320})
...     print(job.wait(timeout=10).result)
...     for ev in job.stream():
...         print(ev.event, ev.item)

Needs pydantic (``pip install 'treadle[client]'``): answers are validated against the
API's own response models before they become the library's records.
"""

from __future__ import annotations

try:
    import pydantic  # noqa: F401
except ImportError as exc:  # pragma: no cover - only without the extra
    from treadle.core.errors import MissingExtra

    raise MissingExtra("client", "pydantic") from exc

from treadle.client.aio import AsyncClient, AsyncRemoteJobHandle, AsyncRemoteJobStream
from treadle.client.calls import JobPage
from treadle.client.sync import Client, RemoteJobHandle, RemoteJobStream

__all__ = [
    "AsyncClient",
    "AsyncRemoteJobHandle",
    "AsyncRemoteJobStream",
    "Client",
    "JobPage",
    "RemoteJobHandle",
    "RemoteJobStream",
]
