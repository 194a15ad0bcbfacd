"""``treadle events send``: the command of the workflow plug-in (ADR 0009)."""

from __future__ import annotations

from typing import Annotated

import typer

from treadle.cli.common import DbOption, clean_errors, console, json_option, load_app
from treadle.core.job import DEFAULT_TENANT
from treadle.kinds import use_builtin
from treadle.workflows.plugin import Workflows

events_app = typer.Typer(help="Events for durable workflows (ctx.wait_event).",
                         no_args_is_help=True)


@events_app.command("send")
def send(
    key: str,
    payload: Annotated[str, typer.Option(help="JSON payload (default: null).")] = "null",
    tenant: Annotated[str, typer.Option(envvar="TREADLE_TENANT")] = DEFAULT_TENANT,
    db: DbOption = None,
) -> None:
    """Send an event: wakes the workflows waiting on KEY; later waits receive it too."""
    value = json_option("--payload", payload)
    with clean_errors():
        app = use_builtin(load_app(None, db))
        try:
            app.check_schema()
            event_id, woken = app.plugin(Workflows).service.send_event(key, value, tenant=tenant)
        finally:
            app.close()
    woke = f"; woke job {', '.join(map(str, woken))}" if woken else ""
    console.print(f"event {event_id} sent to {key!r}{woke}")
