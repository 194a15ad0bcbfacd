"""Running the API under uvicorn: blocking (``serve``) or in a thread (``treadle up``)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from treadle.api.config import ApiConfig
from treadle.core.errors import ConfigurationError

if TYPE_CHECKING:
    import uvicorn

    from treadle.app import Treadle

log = logging.getLogger("treadle.api")
HTTP_CHOICES = ("auto", "httptools", "h11")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_from_env(host: str = "127.0.0.1", *, allow_open: bool = True) -> ApiConfig:
    """The CLI edge: TREADLE_ADMIN_KEY, TREADLE_WEBHOOK_SECRET, TREADLE_MAX_PAYLOAD_BYTES,
    TREADLE_SYNC_WINDOW, TREADLE_KEY_CACHE_SECONDS. Without an admin key, a loopback bind
    runs open (logged loudly)."""
    admin = os.environ.get("TREADLE_ADMIN_KEY") or None
    kwargs: dict[str, object] = {}
    for var, field, kind in (("TREADLE_MAX_PAYLOAD_BYTES", "max_payload_bytes", int),
                             ("TREADLE_SYNC_WINDOW", "sync_window", float),
                             ("TREADLE_KEY_CACHE_SECONDS", "key_cache_seconds", float)):
        value = os.environ.get(var)
        if value:
            try:
                kwargs[field] = kind(value)
            except ValueError:
                raise ConfigurationError(
                    f"{var} must be a number, got {value[:40]!r}") from None
    return ApiConfig(
        admin_key=admin,
        webhook_secret=os.environ.get("TREADLE_WEBHOOK_SECRET") or None,
        open_loopback=allow_open and admin is None and is_loopback_host(host),
        **kwargs,  # type: ignore[arg-type]
    )


def _asgi_app(treadle: Treadle, config: ApiConfig, host: str, port: int) -> Any:
    from treadle.api.app import create_app
    from treadle.api.metrics import Metrics

    _check_open(config, host)
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
    return app


def http_protocol(choice: str = "auto") -> Any:
    """uvicorn's ``http`` setting for ``choice`` (ADR 0026): ``auto`` is the C parser
    (httptools, with problem+json refusals) when installed, else h11."""
    if choice not in HTTP_CHOICES:
        raise ConfigurationError(f"--http must be one of {', '.join(HTTP_CHOICES)}")
    if choice == "h11":
        return "h11"
    try:
        from treadle.api.protocol import ApiHttpToolsProtocol
    except ImportError:
        if choice == "httptools":
            raise ConfigurationError("--http httptools needs the httptools package") from None
        return "h11"
    return ApiHttpToolsProtocol


def _uvicorn_config(app: Any, host: str, port: int, log_level: str, http: str,
                    **kwargs: Any) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                          timeout_keep_alive=30, http=http_protocol(http), **kwargs)


def _server(treadle: Treadle, config: ApiConfig, host: str, port: int,
            log_level: str, http: str = "auto") -> uvicorn.Server:
    import uvicorn

    app = _asgi_app(treadle, config, host, port)
    return uvicorn.Server(_uvicorn_config(app, host, port, log_level, http))


def serve(
    treadle: Treadle, config: ApiConfig, host: str = "127.0.0.1", port: int = 8787,
    *, log_level: str = "info", http: str = "auto",
) -> None:
    """Run the API until interrupted (blocking)."""
    _server(treadle, config, host, port, log_level, http).run()


# The CLI's settings for `serve_processes`' children, which build their own app.
_CHILD_SPEC = "TREADLE_SERVER_PROCESS"


def serve_processes(
    build: tuple[str | None, str | None, bool], host: str, port: int,
    *, workers: int, log_level: str = "info", http: str = "auto",
) -> None:
    """Run the API in ``workers`` processes sharing one listening socket (uvicorn's
    supervisor restarts a process that dies). Each process loads the app from ``build``
    (``--app``, ``--db``, ``--otel``) and its settings from the environment, as the CLI
    does, and has its own connections and group committer; on SQLite they share the one
    write lock. Metrics counters are per process (ADR 0026)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    _check_open(config_from_env(host), host)
    app_spec, db, otel = build
    os.environ[_CHILD_SPEC] = json.dumps({"app": app_spec, "db": db, "otel": otel,
                                          "host": host, "port": port})
    config = uvicorn.Config("treadle.api.server:process_app", factory=True, workers=workers,
                            host=host, port=port, log_level=log_level, access_log=False,
                            timeout_keep_alive=30, http=http_protocol(http),
                            # A child loads the whole app before it answers the supervisor's
                            # ping; on a busy host that takes longer than uvicorn's 5 s, and
                            # it would be killed and started again, over and over.
                            timeout_worker_healthcheck=60)
    sock = listening_socket(host, port)
    log.info("Serving on http://%s:%d with %d processes", host, sock.getsockname()[1], workers)
    try:  # as uvicorn.run(..., workers=N), with our socket
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """The TCP socket ``serve_processes``' children share (bound, not yet listening),
    made as uvicorn's ``Config.bind_socket`` makes it except for its protocol number
    (ADR 0033). asyncio turns Nagle off (TCP_NODELAY) only on a socket whose ``proto``
    says TCP, and an accepted socket takes the listening one's; uvicorn's is made with
    proto 0, so under ``--workers`` every connection kept Nagle on. An answer is two
    writes (head, then body): the body waited for the client's delayed ACK of the head,
    ~40 ms, and 16 connections got ~350 answers/s whatever the CPU."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc
    sock.set_inheritable(True)
    return sock


def _check_open(config: ApiConfig, host: str) -> None:
    if config.open_loopback and not is_loopback_host(host):
        raise ConfigurationError(
            f"open_loopback serves without API keys and is only allowed on a loopback "
            f"address, not {host!r}: set TREADLE_ADMIN_KEY or create keys"
        )


def process_app() -> Any:
    """The app of one ``serve_processes`` child (uvicorn imports and calls this)."""
    from treadle.cli.common import enable_tracing, load_app
    from treadle.kinds import use_builtin

    spec = json.loads(os.environ[_CHILD_SPEC])
    treadle = use_builtin(load_app(spec["app"], spec["db"]))
    enable_tracing(treadle, spec["otel"])
    host = spec["host"]
    return _asgi_app(treadle, config_from_env(host), host, spec["port"])


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
