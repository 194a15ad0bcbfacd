"""``treadle artifacts list|get|purge``: the files jobs produced, from the command line.

The artifact store is ``TREADLE_ARTIFACTS_URL`` (read by ``load_app``, the CLI's edge) or
the directory beside the SQLite database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from treadle.artifacts.model import human_size
from treadle.artifacts.names import download_name
from treadle.cli.common import DbOption, clean_errors, console, fail, local_app

artifacts_app = typer.Typer(help="The files jobs produced.", no_args_is_help=True)


@artifacts_app.command("list")
def list_artifacts(
    job_id: int,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List a job's artifacts."""
    with clean_errors(), local_app(db) as app:
        app.get_job(job_id)  # a clear error for a job that does not exist
        arts = app.job_artifacts(job_id)
        if as_json:
            print(json.dumps([a.to_json() for a in arts], indent=2))
            return
        table = Table("id", "name", "step", "size", "type", "sha256", title=f"job {job_id}")
        for a in arts:
            table.add_row(str(a.id), escape(a.name), escape(a.step or ""), human_size(a.size),
                          a.content_type, a.sha256[:12])
        console.print(table)


@artifacts_app.command("get")
def get(
    artifact_id: int,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="File to write ('-' for stdout); default: its name, here.")]
    = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    db: DbOption = None,
) -> None:
    """Download one artifact by id."""
    with clean_errors(), local_app(db) as app:
        art = app.artifacts.get(artifact_id)
        if output == "-":
            for chunk in app.artifacts.open(art):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        # Only the last segment of a checked name: never a path outside the cwd.
        path = Path(output) if output else Path.cwd() / download_name(art.name)
        if path.exists() and not force:
            fail(f"{path} exists (use --force to overwrite)")
        app.artifacts.download(art, path)
        console.print(f"wrote {escape(str(path))} ({human_size(art.size)})", highlight=False)


@artifacts_app.command("purge")
def purge(job_id: int, db: DbOption = None) -> None:
    """Forget a job's artifacts; delete the stored files no other job references."""
    with clean_errors(), local_app(db) as app:
        gone = app.artifacts.delete_job(app.get_job(job_id).id)
        console.print(f"job {job_id}: {len(gone)} stored file(s) deleted")


@artifacts_app.command("gc")
def gc(db: DbOption = None) -> None:
    """Delete the stored files no artifact references (left by deleted jobs)."""
    with clean_errors(), local_app(db) as app:
        console.print(f"{app.artifacts.collect_garbage()} stored file(s) deleted")
