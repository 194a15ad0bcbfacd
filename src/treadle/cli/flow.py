"""``treadle schedules list|pause|resume``, ``treadle tenants list|set-weight``,
``treadle queues list|set-retention`` and ``treadle jobs prune`` (ADR 0010)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from treadle.cli.common import (
    AppOption,
    DbOption,
    clean_errors,
    console,
    fail,
    local_app,
)
from treadle.cli.jobs import jobs_app
from treadle.core.ages import format_age, parse_age
from treadle.core.job import DEFAULT_RETENTION

schedules_app = typer.Typer(help="Cron schedules: list, pause, resume.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants' shares of the workers (weights).", no_args_is_help=True)
queues_app = typer.Typer(help="Queues: list them, set their retention.", no_args_is_help=True)

@schedules_app.command("list")
def list_schedules(app_spec: AppOption = None, db: DbOption = None) -> None:
    """Every cron schedule of the app, paused or not, with its next fire times."""
    with clean_errors(), local_app(db, app_spec) as app:
        table = Table("name", "cron", "tz", "overlap", "catch-up", "paused", "next fires")
        for s in app.schedules():
            table.add_row(s["name"], s["expr"], s["tz"], s["overlap"], s["catch_up"],
                          "yes" if s["paused"] else "", ", ".join(s["next_fires"]))
        console.print(table)


@schedules_app.command("pause")
def pause(name: str, app_spec: AppOption = None, db: DbOption = None) -> None:
    """Stop a schedule from firing (its missed ticks are not replayed on resume)."""
    with clean_errors(), local_app(db, app_spec) as app:
        app.set_schedule_paused(name, True)
        console.print(f"schedule {name}: paused")


@schedules_app.command("resume")
def resume(name: str, app_spec: AppOption = None, db: DbOption = None) -> None:
    with clean_errors(), local_app(db, app_spec) as app:
        app.set_schedule_paused(name, False)
        console.print(f"schedule {name}: resumed")


@jobs_app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option("--older-than", help="e.g. 1d, 12h")] = "7d",
    db: DbOption = None,
) -> None:
    """Delete finished jobs (with their events and logs) finished longer ago than this."""
    with clean_errors():
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            fail(str(exc))
        with local_app(db) as app:
            total = 0
            while (n := app.store.prune(limit=500, older_than=age)) > 0:
                total += n
            console.print(f"pruned {total} finished jobs")


@tenants_app.command("set-weight")
def set_weight(tenant: str, weight: int, db: DbOption = None) -> None:
    """Give TENANT WEIGHT shares of the worker slots while several tenants wait (default 1)."""
    with clean_errors():
        with local_app(db) as app:
            app.store.set_tenant_weight(tenant, weight)
        console.print(f"tenant {tenant}: weight {weight}")


@tenants_app.command("list")
def list_tenants(db: DbOption = None) -> None:
    """Tenants with a weight set (every other tenant weighs 1)."""
    with clean_errors():
        table = Table("tenant", "weight")
        with local_app(db) as app:
            weights = app.store.tenant_weights()
        for name, weight in weights.items():
            table.add_row(name, str(weight))
        console.print(table)


@queues_app.command("list")
def list_queues(db: DbOption = None) -> None:
    """Every queue with its state, depth, limit and retention."""
    with clean_errors():
        table = Table("queue", "state", "depth", "running", "limit", "retention")
        with local_app(db) as app:
            queues = app.store.queues()
        for q in queues:
            table.add_row(q.name, "paused" if q.paused else "active", str(q.queued),
                          str(q.running), "" if q.concurrency_limit is None
                          else str(q.concurrency_limit), format_age(q.retention_seconds))
        console.print(table)


@queues_app.command("set-retention")
def set_retention(
    queue: str,
    age: Annotated[str, typer.Argument(help="e.g. 12h, 1d, 2w; `default` for 7 days")],
    db: DbOption = None,
) -> None:
    """Delete QUEUE's finished jobs (with their events and logs) AGE after they finish."""
    with clean_errors():
        try:
            seconds = None if age == "default" else parse_age(age)
        except ValueError as exc:
            fail(str(exc))
        with local_app(db) as app:
            app.store.set_retention(queue, seconds)
        shown = format_age(seconds if seconds is not None else DEFAULT_RETENTION)
        console.print(f"queue {queue}: finished jobs kept {shown}")
