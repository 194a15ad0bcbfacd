"""Settings of the HTTP API, fixed when the app is built."""

from __future__ import annotations

from dataclasses import dataclass

from treadle.core.errors import ConfigurationError


@dataclass(frozen=True)
class ApiConfig:
    """Everything ``create_app`` needs besides the ``Treadle``.

    ``admin_key`` is the ``TREADLE_ADMIN_KEY`` bootstrap key (an admin key of the
    default tenant); the CLI reads the environment, this class never does.
    ``open_loopback`` lets unauthenticated requests from 127.0.0.1/::1 act as
    that admin (the embedded ``treadle up`` default); ``serve`` refuses it on a
    non-loopback bind.
    """

    admin_key: str | None = None
    max_payload_bytes: int = 1 << 20
    sync_window: float = 25.0
    webhook_secret: str | None = None
    open_loopback: bool = False
    public_metrics: bool = False
    max_sync_waiters: int = 256
    hook_tolerance: float = 300.0
    max_page_size: int = 500
    title: str = "Treadle"
    # How long a valid API key is remembered (ADR 0033): a key revoked by another process
    # goes on working here for at most this long; 0 reads the database every request.
    key_cache_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_payload_bytes < 1024:
            raise ConfigurationError("max_payload_bytes must be at least 1024")
        if not 0 < self.sync_window <= 3600:
            raise ConfigurationError("sync_window must be in (0, 3600] seconds")
        if self.max_sync_waiters < 1:
            raise ConfigurationError("max_sync_waiters must be at least 1")
        if not 0 <= self.key_cache_seconds <= 60:
            raise ConfigurationError("key_cache_seconds must be in [0, 60]")
        if self.admin_key is not None and len(self.admin_key) < 16:
            raise ConfigurationError("TREADLE_ADMIN_KEY must be at least 16 characters")

    @property
    def max_body_bytes(self) -> int:
        # The request envelope (task name, options) around a maximal payload.
        return self.max_payload_bytes + 64 * 1024
