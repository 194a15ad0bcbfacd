"""A command that loads the user's app (``--app module:attr``) closes it when done, as it
closes an app it made itself: a PostgreSQL pool has threads, and one left to the garbage
collector of a command run in-process (a test, a host program) may be collected in its
own thread, which raises; an exporter flushes what it holds."""

from __future__ import annotations

import importlib
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from treadle.cli import app as cli


@pytest.mark.parametrize("argv", [
    ["schedules", "list"],
    ["schedules", "pause", "nightly"],
    ["submit", "echo", "--payload", '{"x": 1}'],
])
def test_a_command_closes_the_app_it_loaded_with_app(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    name = f"cli_app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "import os\n"
        "from treadle import Treadle\n"
        "app = Treadle(os.environ['TREADLE_DATABASE_URL'])\n"
        "app.migrate()\n"
        "@app.cron('0 3 * * *', name='nightly')\n"
        "def nightly() -> None: ...\n"
        "@app.task(name='echo')\n"
        "def echo(x: int) -> int:\n"
        "    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TREADLE_DATABASE_URL", db_url)
    try:
        result = CliRunner().invoke(cli, [*argv, "--app", f"{name}:app", "--db", db_url])
        assert result.exit_code == 0, result.output
        loaded = importlib.import_module(name).app
        assert loaded._closed
    finally:
        sys.modules.pop(name, None)
