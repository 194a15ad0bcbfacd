"""``treadle schedules list|pause|resume``, ``treadle tenants list|set-weight`` and
``treadle jobs prune`` (ADR 0010)."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from treadle.cli.common import AppOption, DbOption, clean_errors, console, fail, load_app
from treadle.cli.jobs import jobs_app

schedules_app = typer.Typer(help="Cron schedules: list, pause, resume.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants' shares of the workers (weights).", no_args_is_help=True)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``1d``, ``2w`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not an age like 90s, 15m, 12h, 1d or 2w")
    return float(m.group(1)) * _UNITS[m.group(2)]


@schedules_app.command("list")
def list_schedules(app_spec: AppOption = None, db: DbOption = None) -> None:
    """Every cron schedule of the app, paused or not, with its next fire times."""
    with clean_errors():
        app = load_app(app_spec, db)
        table = Table("name", "cron", "tz", "overlap", "catch-up", "paused", "next fires")
        for s in app.schedules():
            table.add_row(s["name"], s["expr"], s["tz"], s["overlap"], s["catch_up"],
                          "yes" if s["paused"] else "", ", ".join(s["next_fires"]))
        console.print(table)


@schedules_app.command("pause")
def pause(name: str, app_spec: AppOption = None, db: DbOption = None) -> None:
    """Stop a schedule from firing (its missed ticks are not replayed on resume)."""
    with clean_errors():
        load_app(app_spec, db).set_schedule_paused(name, True)
        console.print(f"schedule {name}: paused")


@schedules_app.command("resume")
def resume(name: str, app_spec: AppOption = None, db: DbOption = None) -> None:
    with clean_errors():
        load_app(app_spec, db).set_schedule_paused(name, False)
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
        app = load_app(None, db)
        total = 0
        while (n := app.store.prune(limit=500, older_than=age)) > 0:
            total += n
        console.print(f"pruned {total} finished jobs")


@tenants_app.command("set-weight")
def set_weight(tenant: str, weight: int, db: DbOption = None) -> None:
    """Give TENANT WEIGHT shares of the worker slots while several tenants wait (default 1)."""
    with clean_errors():
        load_app(None, db).store.set_tenant_weight(tenant, weight)
        console.print(f"tenant {tenant}: weight {weight}")


@tenants_app.command("list")
def list_tenants(db: DbOption = None) -> None:
    """Tenants with a weight set (every other tenant weighs 1)."""
    with clean_errors():
        table = Table("tenant", "weight")
        for name, weight in load_app(None, db).store.tenant_weights().items():
            table.add_row(name, str(weight))
        console.print(table)
