"""What every command shares: database URL, app loading, one-line errors."""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from treadle.app import DEFAULT_URL, Treadle
from treadle.core.errors import ConfigurationError, TreadleError
from treadle.egress import EgressPolicy
from treadle.store import probe as probe_store
from treadle.tracing import otel_tracing

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="TREADLE_DATABASE_URL",
                 help="Database URL: sqlite:///path.db (default) or postgresql://..."),
]
AppOption = Annotated[
    str | None,
    typer.Option("--app", envvar="TREADLE_APP",
                 help="Where your Treadle app is, as module:attribute (e.g. myproj.tasks:app)."),
]


def fail(message: str, code: int = 2) -> NoReturn:
    # escape: messages quote user input and extras like treadle[server], not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def json_option(flag: str, text: str) -> Any:
    """The JSON value of a command-line option, or one line naming the option. Besides
    JSONDecodeError, ``json.loads`` raises ValueError (an integer beyond 4300 digits) and
    RecursionError (nesting thousands deep), which would otherwise be tracebacks."""
    try:
        return json.loads(text)
    except RecursionError:
        fail(f"{flag} is nested too deeply (at most 100 levels)")
    except ValueError as exc:
        fail(f"{flag} is not valid JSON: {exc}")


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn anything a user can cause into one clear line and a non-zero exit."""
    try:
        yield
    except typer.Exit:
        raise
    except TreadleError as exc:  # stores translate their drivers' errors (StoreError)
        fail(exc.message)
    except UnicodeError:
        # An argument that is not valid text (a non-UTF-8 byte on the command line becomes
        # a lone surrogate): nothing can store or look it up.
        fail("an argument is not valid Unicode text (lone surrogate or undecodable byte)")
    except OSError as exc:
        fail(str(exc))


def probe(url: str) -> None:
    """Fail fast, with the driver's own reason, when a server database is unreachable."""
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)  # we report it ourselves
    probe_store(url)


def load_app(spec: str | None, db: str | None) -> Treadle:
    """Import ``module:attr`` (a Treadle instance), bound to ``db`` when given.

    ``TREADLE_EGRESS_ALLOW`` (CIDR ranges, comma-separated), when set, becomes the app's
    egress policy: the private ranges env.fetch and callbacks may reach (ADR 0305)."""
    app = _load_app(spec, db)
    allow = os.environ.get("TREADLE_EGRESS_ALLOW")
    if allow is not None:
        app.egress = EgressPolicy.parse(allow)
    return app


@contextlib.contextmanager
def local_app(db: str | None, spec: str | None = None) -> Iterator[Treadle]:
    """The app for one command (``spec``, ``module:attr``, or a plain one on ``db``),
    closed when the command is done with it, however it ends: a PostgreSQL pool has
    threads, and one left to the garbage collector (a command run in-process, by a test
    or a host program) may be collected in its own thread, which raises; an exporter
    flushes what it holds."""
    app = load_app(spec, db)
    try:
        yield app
    finally:
        app.close()


OtelOption = Annotated[
    bool,
    typer.Option("--otel", help="Export OpenTelemetry traces over OTLP/HTTP (needs "
                 "treadle[otel]); on too when OTEL_EXPORTER_OTLP_ENDPOINT is set."),
]


def enable_tracing(app: Treadle, flag: bool) -> None:
    """Tracing from ``--otel`` or the standard OpenTelemetry variables (ADR 0021).

    On when the flag is given or an OTLP endpoint variable is set; off with
    ``OTEL_SDK_DISABLED=true``. The exporter reads ``OTEL_EXPORTER_OTLP_*`` itself; the
    service is ``OTEL_SERVICE_NAME`` (default ``treadle``). Without the extra installed
    this fails with a message naming ``treadle[otel]``."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    if not flag and not any(k in env for k in ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    name = env.get("OTEL_SERVICE_NAME", "").strip()[:200] or "treadle"
    app.tracing = otel_tracing(service_name=name)
    app.on_close(app.tracing.shutdown)


def freeze_startup() -> None:
    """Move what start-up made (imported modules, the app, the worker) out of the garbage
    collector's reach, as a long-running process should: it lives until the process
    ends, and a full collection walked all of it each time, ~17 ms for ~50,000 objects
    (measured: a worker of the bench app), a pause any job starting then would wait out.
    After this a full collection sees only what was made since: ~0 ms."""
    gc.collect()
    gc.freeze()


def _load_app(spec: str | None, db: str | None) -> Treadle:
    url = db or DEFAULT_URL
    probe(url)
    if not spec:
        return _with_artifacts(Treadle(url))
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"--app must look like module:attribute, got {spec!r}")
    if db:
        # Apps commonly read the URL from the environment at import time.
        os.environ["TREADLE_DATABASE_URL"] = db
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    app: Any = getattr(module, attr, None)
    if not isinstance(app, Treadle):
        raise ConfigurationError(f"{spec!r} is not a Treadle app (found {type(app).__name__})")
    if db and app.url != db:
        app.store.close()
        rebound = Treadle(db, clock=app.clock)
        app.store, app.url = rebound.store, db
    return _with_artifacts(app)


def _with_artifacts(app: Treadle) -> Treadle:
    """``TREADLE_ARTIFACTS_URL`` (read here, at the edge) unless the app chose a store."""
    url = os.environ.get("TREADLE_ARTIFACTS_URL")
    if url and not app.artifacts_configured:
        app.configure_artifacts(url)
    return app


def install_builtins(app: Treadle) -> None:
    """Register built-in tasks (callback delivery) when their module is present."""
    try:
        from treadle import webhooks
    except ImportError:
        return
    try:  # the media pipeline, when the media extra (PyAV) is installed
        from treadle.media import register as register_media
    except ImportError:
        pass
    else:
        register_media(app)
    register = getattr(webhooks, "register_builtin_tasks", None)
    if register is not None and "treadle.deliver_callback" not in app.tasks:
        register(app, os.environ.get("TREADLE_WEBHOOK_SECRET"))
