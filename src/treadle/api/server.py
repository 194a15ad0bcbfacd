"""Running the API under uvicorn: blocking (``serve``) or in a thread (``treadle up``)."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from treadle.api.config import ApiConfig
from treadle.core.errors import ConfigurationError

if TYPE_CHECKING:
    import uvicorn

    from treadle.app import Treadle

log = logging.getLogger("treadle.api")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_from_env(host: str = "127.0.0.1", *, allow_open: bool = True) -> ApiConfig:
    """The CLI edge: TREADLE_ADMIN_KEY, TREADLE_WEBHOOK_SECRET, TREADLE_MAX_PAYLOAD_BYTES,
    TREADLE_SYNC_WINDOW. Without an admin key, a loopback bind runs open (logged loudly)."""
    admin = os.environ.get("TREADLE_ADMIN_KEY") or None
    kwargs: dict[str, object] = {}
    if os.environ.get("TREADLE_MAX_PAYLOAD_BYTES"):
        kwargs["max_payload_bytes"] = int(os.environ["TREADLE_MAX_PAYLOAD_BYTES"])
    if os.environ.get("TREADLE_SYNC_WINDOW"):
        kwargs["sync_window"] = float(os.environ["TREADLE_SYNC_WINDOW"])
    return ApiConfig(
        admin_key=admin,
        webhook_secret=os.environ.get("TREADLE_WEBHOOK_SECRET") or None,
        open_loopback=allow_open and admin is None and is_loopback_host(host),
        **kwargs,  # type: ignore[arg-type]
    )


def _server(treadle: Treadle, config: ApiConfig, host: str, port: int,
            log_level: str) -> uvicorn.Server:
    import uvicorn

    from treadle.api.app import create_app
    from treadle.api.metrics import Metrics

    if config.open_loopback and not is_loopback_host(host):
        raise ConfigurationError(
            f"open_loopback serves without API keys and is only allowed on a loopback "
            f"address, not {host!r}: set TREADLE_ADMIN_KEY or create keys"
        )
    if config.open_loopback:
        log.warning("API is OPEN on %s:%s: loopback requests without a key act as the admin "
                    "of the default tenant. Set TREADLE_ADMIN_KEY to require keys.", host, port)
    metrics = Metrics()
    app = create_app(treadle, config, metrics=metrics)
    if treadle.observer is None:
        # `treadle up` builds its worker after the server and passes `app.observer` to it,
        # so in-process worker activity lands on this app's /metrics.
        treadle.observer = metrics.observer()
    try:  # the UI mounts onto the API app and shares its auth, when installed
        from treadle.ui import mount as mount_ui
    except ImportError:
        pass
    else:
        mount_ui(app, treadle)
    cfg = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                         timeout_keep_alive=30)
    return uvicorn.Server(cfg)


def serve(
    treadle: Treadle, config: ApiConfig, host: str = "127.0.0.1", port: int = 8787,
    *, log_level: str = "info",
) -> None:
    """Run the API until interrupted (blocking)."""
    _server(treadle, config, host, port, log_level).run()


def start_in_thread(
    treadle: Treadle, *, host: str = "127.0.0.1", port: int = 8787,
    config: ApiConfig | None = None, log_level: str = "warning", ready_timeout: float = 10.0,
) -> uvicorn.Server:
    """Start the API in a daemon thread; returns once it accepts connections.

    Stop it with ``server.should_exit = True``. Signal handlers stay with the
    caller (uvicorn installs none off the main thread).
    """
    server = _server(treadle, config or config_from_env(host), host, port, log_level)
    thread = threading.Thread(target=server.run, name="treadle-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigurationError(f"the API did not start on {host}:{port}")
        time.sleep(0.01)
    return server
