"""What the adapters over an official SDK (``openai``, ``anthropic``) share.

The SDK client is built on first use, not when the agent is declared: an app that never
calls the model imports neither the SDK nor needs its API key, and a missing SDK is a
:class:`~treadle.core.errors.MissingExtra` naming the ``agents`` extra.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any, ClassVar

from treadle.core.errors import MissingExtra


class SdkAdapter:
    sdk: ClassVar[str]  # the SDK's module, also the package the extra installs
    client_class: ClassVar[str]  # the client class in that module

    def __init__(self, model: str, *, client: Any = None, stream: bool = False,
                 max_retries: int = 0, **client_options: Any) -> None:
        self._model = model
        self.stream = stream
        self._client = client
        self._owned = client is None  # a client passed in is the caller's to close
        self._options = {"max_retries": max_retries, **client_options}
        self._lock = threading.Lock()  # worker threads share the adapter: build one client

    @property
    def model(self) -> str:
        return self._model

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    module = importlib.import_module(self.sdk)
                except ImportError as exc:
                    raise MissingExtra("agents", self.sdk) from exc
                self._client = getattr(module, self.client_class)(**self._options)
            return self._client

    def close(self) -> None:
        """Close the SDK client this adapter built (its HTTP connection pool)."""
        if not self._owned:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
