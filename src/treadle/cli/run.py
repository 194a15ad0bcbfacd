"""``treadle worker``, ``treadle up`` and ``treadle migrate``: the long-running commands."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape

from treadle.app import Treadle
from treadle.cli.common import (
    AppOption,
    DbOption,
    OtelOption,
    clean_errors,
    console,
    enable_tracing,
    err_console,
    freeze_startup,
    install_builtins,
    local_app,
)
from treadle.core.errors import MissingExtra
from treadle.core.job import JobKind, validate_name
from treadle.core.lease import LeaseConfig
from treadle.executors import Executor
from treadle.kinds import use_builtin
from treadle.logs import configure_logging, get_logger
from treadle.worker import Scheduler, Worker, WorkerConfig

log = get_logger("treadle.cli")


def migrate(db: DbOption = None) -> None:
    """Create or upgrade the database schema."""
    with clean_errors(), local_app(db) as app:
        use_builtin(app)
        applied = app.store.migrate()
        plugins = {name: v for name, v in app.migrate_plugins().items() if v}
        if applied:
            console.print(f"applied migrations {', '.join(map(str, applied))} to {app.url}")
        for name, versions in plugins.items():
            console.print(f"applied {name} migrations {', '.join(map(str, versions))}")
        if not applied and not plugins:
            console.print(f"schema of {app.url} is up to date")


def executors_for(app: Treadle) -> dict[JobKind, Executor]:
    """Deprecated: ``app.executors()``."""
    return app.executors()


def build_worker(app: Treadle, config: WorkerConfig) -> Worker:
    """A worker for every kind the app serves (it claims only those kinds)."""
    install_builtins(app)
    use_builtin(app)
    kwargs: dict[str, Any] = {"observer": app.observer} if app.observer is not None else {}
    if app.periodics or app.crons:
        kwargs["scheduler"] = Scheduler(app)
    return Worker(app.store, app.executors(), config, **app.worker_options(), **kwargs)


class GracefulSignals:
    """SIGTERM/SIGINT: stop claiming and drain (grace period); a second one exits at once.

    Installed before anything slow starts (the API server, the sandboxes), so a signal
    that arrives while `treadle up` is still starting is not lost to the default handler.
    """

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.requested = False
        self.hits = 0
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.hits += 1
        if self.hits > 1:
            raise SystemExit(130)
        self.requested = True
        grace = self.worker.config.shutdown_grace if self.worker else 0.0
        err_console.print(
            f"[yellow]{signal.Signals(signum).name}: finishing in-flight jobs "
            f"(up to {grace:.0f}s); again to quit now[/]"
        )
        if self.worker is not None:
            self.worker.stop()

    def run(self, worker: Worker) -> None:
        self.worker = worker
        if self.requested:  # asked to stop while starting up
            worker.stop()
        worker.run()


def worker(
    app_spec: AppOption = None,
    db: DbOption = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues (default: all).")]
    = None,
    concurrency: Annotated[int, typer.Option(min=1, max=10_000)] = 10,
    prefetch: Annotated[int | None, typer.Option(
        min=0, max=10_000, help="Jobs claimed ahead of free slots (default: adaptive, ADR 0017).",
    )] = None,
    lease_seconds: Annotated[float, typer.Option(min=0.2, max=86_400)] = 30.0,
    shutdown_grace: Annotated[float, typer.Option(min=0)] = 30.0,
    name: Annotated[str | None, typer.Option(help="Worker id (default host:pid:rand).")] = None,
    burst: Annotated[bool, typer.Option(help="Exit when no job is left.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve this worker's Prometheus metrics on a port."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")]
    = "127.0.0.1",
    otel: OtelOption = False,
) -> None:
    """Run a worker: claim jobs under leases and run them."""
    configure_logging(level=log_level)
    signals = GracefulSignals()
    with clean_errors(), local_app(db, app_spec) as app:
        use_builtin(app)
        enable_tracing(app, otel)
        app.check_schema()
        if metrics_port is not None:
            serve_worker_metrics(app, metrics_host, metrics_port)
        qs = tuple(q.strip() for q in queues.split(",") if q.strip()) if queues else None
        for q in qs or ():  # a queue no job can have: a worker that would wait forever
            validate_name("queue", q)
        config = WorkerConfig(
            queues=qs, concurrency=concurrency, prefetch=prefetch,
            lease=LeaseConfig(seconds=lease_seconds),
            shutdown_grace=shutdown_grace, name=name, burst=burst,
        )
        built = build_worker(app, config)
        freeze_startup()
        signals.run(built)


def up(
    app_spec: AppOption = None,
    db: DbOption = None,
    concurrency: Annotated[int, typer.Option(min=1, max=10_000)] = 10,
    host: Annotated[str, typer.Option(help="API/UI address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8787,
    server: Annotated[bool, typer.Option(help="Serve the HTTP API and UI too.")] = True,
    log_level: Annotated[str, typer.Option()] = "info",
    otel: OtelOption = False,
) -> None:
    """Everything in one process: migrate, then API + UI, workers, reaper and scheduler."""
    configure_logging(level=log_level)
    signals = GracefulSignals()
    with clean_errors(), local_app(db, app_spec) as app:
        use_builtin(app)
        enable_tracing(app, otel)
        applied = app.migrate()
        if applied:
            log.info("migrated", versions=applied, db=app.url)
        if server:
            _start_server(app, host, port)
        console.print(f"[bold green]treadle up[/] on {app.url} — tasks: "
                      f"{', '.join(sorted(app.tasks)) or 'none registered (pass --app)'}")
        built = build_worker(app, WorkerConfig(concurrency=concurrency))
        freeze_startup()
        signals.run(built)


def serve_worker_metrics(app: Treadle, host: str, port: int) -> None:
    """Each worker process counts its own claims, outcomes, retries and heartbeats; this
    exposes them for Prometheus to scrape (the API's /metrics sees only in-process workers)."""
    try:
        from prometheus_client import start_http_server

        from treadle.api.metrics import Metrics
    except ImportError as exc:
        raise MissingExtra("server", exc.name or "prometheus-client") from exc
    metrics = Metrics()  # counters only: job-state gauges come from the API's /metrics
    app.observer = metrics.observer()
    start_http_server(port, addr=host, registry=metrics.registry)
    log.info("worker metrics served", url=f"http://{host}:{port}/metrics")


def enable_dynamic_workers(app: Treadle) -> None:
    """Deprecated: ``treadle.kinds.use_builtin(app)`` (registers the built-in kinds)."""
    use_builtin(app)


def _start_server(app: Treadle, host: str, port: int) -> None:
    try:
        from treadle.api.server import start_in_thread
    except ImportError as exc:
        missing = MissingExtra("server", exc.name or "fastapi")
        err_console.print(f"[yellow]HTTP API and UI not started: {escape(missing.message)}[/]")
        return
    start_in_thread(app, host=host, port=port)
    console.print(f"API and UI on http://{host}:{port}/")


__all__ = ["GracefulSignals", "migrate", "up", "worker"]
