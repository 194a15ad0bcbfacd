"""``treadle agents``: spend per tenant, caps, and one run turn by turn."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from treadle.agents.plugin import Agents
from treadle.agents.runs import run_view
from treadle.cli.common import AppOption, DbOption, clean_errors, console, load_app
from treadle.kinds import use_builtin

agents_app = typer.Typer(help="Durable LLM agents: spend, caps, runs.", no_args_is_help=True)


@agents_app.command("spend")
def spend(app_path: AppOption = None, db: DbOption = None) -> None:
    """Spend per tenant (from the ledger), with caps."""
    with clean_errors():
        app = use_builtin(load_app(app_path, db))
        try:
            rows = app.plugin(Agents).ledger.by_tenant()
        finally:
            app.close()
    table = Table("tenant", "runs", "calls", "tokens in", "tokens out", "cost USD", "cap USD")
    for r in rows:
        table.add_row(r.tenant, str(r.runs), str(r.calls), str(r.tokens_in), str(r.tokens_out),
                      f"{r.cost_usd:.6f}", "-" if r.cap_usd is None else f"{r.cap_usd:.2f}")
    console.print(table)


@agents_app.command("cap")
def cap(
    tenant: str,
    usd: Annotated[float | None, typer.Argument(help="Cap in USD; omit to remove it.")] = None,
    app_path: AppOption = None, db: DbOption = None,
) -> None:
    """Set (or remove) a tenant's cap on total agent spend."""
    with clean_errors():
        app = use_builtin(load_app(app_path, db))
        try:
            app.plugin(Agents).ledger.set_cap(tenant, usd)
        finally:
            app.close()
    console.print(f"tenant {tenant!r}: cap {'removed' if usd is None else f'${usd:.2f}'}")


@agents_app.command("run")
def show_run(job_id: int, app_path: AppOption = None, db: DbOption = None) -> None:
    """One agent run, turn by turn, as JSON."""
    with clean_errors():
        app = use_builtin(load_app(app_path, db))
        try:
            view = run_view(app.get_job(job_id), app.job_steps(job_id))
        finally:
            app.close()
    console.print_json(json.dumps(view, default=str))
