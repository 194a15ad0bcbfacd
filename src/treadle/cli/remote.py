"""``--url/--key``: commands that work through a Treadle server's HTTP API (ADR 0020).

``TREADLE_URL`` and ``TREADLE_API_KEY`` are read here, at the CLI edge. With a URL the
job commands use :class:`treadle.client.Client` instead of opening the database, so an
operator without database access (or on another machine) gets the same commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from treadle.client import Client

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="TREADLE_URL",
                 help="A Treadle server (http://host:8787): work through its HTTP API "
                      "instead of the database."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="TREADLE_API_KEY", help="The API key for --url."),
]

def remote(url: str | None, key: str | None) -> Client | None:
    """A client when ``--url`` (or ``TREADLE_URL``) is given; None: use the database."""
    if not url:
        return None
    from treadle.client import Client  # MissingExtra names the extra when pydantic is absent

    return Client(url, key or None)
