"""The ``treadle`` command (typer + rich). Environment variables are read here, at the edge."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from treadle.artifacts.cli import artifacts_app
from treadle.cli.common import clean_errors, fail, load_app
from treadle.cli.flow import queues_app, schedules_app, tenants_app
from treadle.cli.jobs import jobs_app, submit
from treadle.cli.run import migrate, up, worker
from treadle.kinds import builtin_plugins

app = typer.Typer(
    name="treadle",
    help="Treadle: durable jobs. The database is the queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(up)
app.command()(worker)
app.command()(migrate)
app.command()(submit)
app.add_typer(jobs_app, name="jobs")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(schedules_app, name="schedules")
app.add_typer(tenants_app, name="tenants")
app.add_typer(queues_app, name="queues")


def _media_commands() -> None:
    try:
        from treadle.media.cli import media_app
    except ImportError:  # the media extra (PyAV) is not installed
        return
    app.add_typer(media_app, name="media")


_media_commands()


def _plugin_commands() -> None:
    """Sub-commands of the built-in job-kind plug-ins (``treadle dynamic`` for ``code``).

    The command line is built before any app is loaded (``--app`` is an option of each
    command), so it offers the kinds that ship with Treadle; each command then finds the
    plug-in on the app it loads (ADR 0008)."""
    for plugin in builtin_plugins():
        sub = plugin.cli()
        if sub is not None and plugin.cli_name:
            app.add_typer(sub, name=plugin.cli_name)
            for old in plugin.cli_old_names:
                app.add_typer(sub, name=old, hidden=True,
                              callback=_deprecated_name(old, plugin.cli_name))


def _deprecated_name(old: str, new: str) -> Callable[[], None]:
    """A group callback that keeps ``treadle <old> ...`` working and says what replaced it."""

    def warn() -> None:
        typer.echo(f"warning: `treadle {old}` is deprecated; use `treadle {new}`", err=True)

    return warn


_plugin_commands()


def _optional_commands() -> None:
    from treadle.cli.keys import keys_app, server_command

    app.add_typer(keys_app, name="keys")
    app.command("server")(server_command)


@app.command()
def bench(
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for python -m bench.")]
    = None,
) -> None:
    """Run the benchmarks (from a source checkout: `python -m bench`)."""
    if not os.path.isdir("bench"):
        fail("run `treadle bench` from the root of a Treadle source checkout (needs bench/)")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *(args or [])]))


_optional_commands()


def main() -> None:
    app()


__all__ = ["app", "clean_errors", "load_app", "main"]
