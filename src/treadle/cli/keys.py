"""``treadle keys create|list|revoke`` and ``treadle server``.

Kept out of ``treadle.api`` so that every other command starts without importing
FastAPI; the API is imported only when these commands run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="TREADLE_DATABASE_URL",
                 help="Database URL: sqlite:///path.db (default) or postgresql://..."),
]


OtelOption = Annotated[
    bool,
    typer.Option("--otel", help="Export OpenTelemetry traces over OTLP/HTTP (needs "
                 "treadle[otel]); on too when OTEL_EXPORTER_OTLP_ENDPOINT is set."),
]


@contextlib.contextmanager
def _keystore(db: str | None) -> Iterator[Any]:
    """The key store on ``db`` for one command (its app closed after). Imports inside:
    this module loads before the API and the CLI's common parts."""
    from treadle.api.auth import keystore_for
    from treadle.cli.common import local_app

    with local_app(db) as app:
        app.check_schema()
        yield keystore_for(app)


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for.")] = "default",
    scopes: Annotated[str, typer.Option(help="Comma-separated: submit, read, admin.")]
    = "submit,read",
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
    db: DbOption = None,
) -> None:
    """Create a key. The key itself is printed once, alone on the last line."""
    from treadle.cli.common import clean_errors

    with clean_errors(), _keystore(db) as store:
        key, raw = store.create_key(tenant, scopes, name)
    typer.echo(f"created {key.id} for tenant {key.tenant!r} with scopes "
               f"{','.join(sorted(key.scopes))}; store the key now, it is not shown again:")
    typer.echo(raw)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    db: DbOption = None,
) -> None:
    """List keys (ids, tenants, scopes; never the keys themselves)."""
    from treadle.cli.common import clean_errors

    with clean_errors(), _keystore(db) as store:
        keys = store.list_keys(tenant)
    if as_json:
        typer.echo(json.dumps([k.to_json() for k in keys], indent=2))
        return
    for k in keys:
        state = "revoked" if k.revoked else "active"
        created = k.created_at.isoformat(timespec="seconds") if k.created_at else "-"
        typer.echo(f"{k.id}\t{k.tenant}\t{','.join(sorted(k.scopes))}\t{state}\t{created}"
                   f"\t{k.name or ''}")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (key_…).")],
           db: DbOption = None) -> None:
    """Revoke a key; requests with it answer 401 from then on (a running server may
    accept it for up to TREADLE_KEY_CACHE_SECONDS more, default 1 s)."""
    from treadle.cli.common import clean_errors, fail

    with clean_errors(), _keystore(db) as store:
        found = store.revoke(key_id)
    if not found:
        fail(f"no key with id {key_id!r}")
    typer.echo(f"revoked {key_id}")


def server_command(
    app_spec: Annotated[str | None, typer.Option("--app", envvar="TREADLE_APP",
                                                 help="module:attribute of your Treadle app")]
    = None,
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8787,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    otel: OtelOption = False,
    http: Annotated[str, typer.Option(
        help="HTTP parser: auto (httptools when installed), httptools or h11.")] = "auto",
    processes: Annotated[int, typer.Option(
        "--workers", min=1, max=64,
        help="Server processes sharing the port (PostgreSQL: one per core; SQLite: "
             "1, as processes take turns at its write lock).")] = 1,
) -> None:
    """Serve the HTTP API (no job workers; run `treadle worker` for those)."""
    from treadle.cli.common import clean_errors, enable_tracing, freeze_startup, local_app
    from treadle.core.errors import MissingExtra
    from treadle.kinds import use_builtin

    with clean_errors():
        try:
            from treadle.api.server import config_from_env, serve, serve_processes
        except ImportError as exc:
            raise MissingExtra("server", exc.name or "fastapi") from exc
        with local_app(db, app_spec) as app:
            use_builtin(app)
            enable_tracing(app, otel)
            app.check_schema()
            if processes > 1:  # each process loads the app itself (ADR 0026)
                app.close()
                serve_processes((app_spec, db, otel), host, port, workers=processes,
                                log_level=log_level, http=http)
                return
            config = config_from_env(host)
            freeze_startup()
            serve(app, config, host=host, port=port, log_level=log_level, http=http)
