"""Acceptance: `treadle dynamic register|run|list|show` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from treadle import Treadle
from treadle.cli import app as cli
from treadle.dynamic import DynamicWorkers
from treadle.sandbox import SandboxManager
from treadle.testing import run_worker

HANDLER = (
    "def handler(input, env):\n"
    "    print('doubling', input['x'])\n"
    "    return {'y': input['x'] * 2}\n"
)


def treadle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("TREADLE_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "treadle", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=env)


def in_process(*args: str) -> Result:
    """The same commands in-process: `python -m treadle` costs ~1 s of imports per call."""
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_register_then_run_from_the_command_line(
    db_url: str, sandboxes: SandboxManager, tmp_path: Path
) -> None:
    src = tmp_path / "double.py"
    src.write_text(HANDLER)
    reg = treadle("dynamic", "register", str(src), "--name", "double", "--timeout", "3",
                  "--db", db_url, cwd=tmp_path)
    assert reg.returncode == 0, reg.stderr
    wid = reg.stdout.strip()
    assert wid.startswith("dw_")
    again = in_process("dynamic", "register", str(src), "--timeout", "3", "--db", db_url)
    assert again.stdout.strip() == wid  # same code + config, same id

    app = Treadle(db_url)
    app.use(DynamicWorkers(sandboxes))
    try:
        with run_worker(app, concurrency=2):
            run = treadle("dynamic", "run", wid, "--input", '{"x": 21}', "--db", db_url,
                          cwd=tmp_path)
            assert run.returncode == 0, run.stderr
            assert json.loads(run.stdout) == {"y": 42}  # stdout is exactly the result
            assert "doubling 21" in run.stderr
            # A subprocess again: in-process, the worker thread's log lines share stdout.
            as_json = treadle("dynamic", "run", wid, "--input", '{"x": 2}', "--mode", "get",
                              "--json", "--db", db_url, cwd=tmp_path)
            assert as_json.returncode == 0, as_json.stderr
            job = json.loads(as_json.stdout)
            assert job["kind"] == "code" and job["status"] == "succeeded"
            assert job["result"] == {"y": 4} and job["payload"]["mode"] == "get"
            assert [entry["message"] for entry in job["logs"]] == ["doubling 2"]
            failing = in_process("dynamic", "run", wid, "--input", '{"z": 1}', "--db", db_url)
            assert failing.exit_code == 1 and "permanent" in failing.output
    finally:
        app.close()

    listed = in_process("dynamic", "list", "--json", "--db", db_url)
    assert [w["id"] for w in json.loads(listed.stdout)] == [wid]
    shown = in_process("dynamic", "show", wid, "--db", db_url)
    assert shown.exit_code == 0 and "def handler" in shown.stdout and "double" in shown.stdout
    queued = in_process("dynamic", "run", wid, "--no-wait", "--db", db_url)
    assert queued.exit_code == 0 and "enqueued job" in queued.stdout


def test_cli_errors_are_one_clear_line(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text(HANDLER)
    cases = [
        (["dynamic", "register", str(tmp_path / "w.txt")], "--language"),
        (["dynamic", "register", str(tmp_path / "missing.py")], "missing.py"),
        (["dynamic", "register", str(tmp_path / "w.txt"), "--language", "py",
          "--timeout", "0"], "timeout"),
        (["dynamic", "run", "dw_nope", "--input", "{}"], "no dynamic worker"),
        (["dynamic", "run", "dw_nope", "--input", "{nope"], "not valid JSON"),
        (["dynamic", "show", "dw_nope"], "no dynamic worker"),
    ]
    for args, needle in cases:
        out = in_process(*args, "--db", db_url)
        assert out.exit_code == 2, (args, out.output)
        assert isinstance(out.exception, SystemExit), out.exception
        assert needle in out.output, out.output


def test_the_old_command_name_still_works_and_says_it_is_deprecated(db_url: str) -> None:
    """`treadle workers ...` was the first name of `treadle dynamic ...`: hidden, warned."""
    old = CliRunner().invoke(cli, ["workers", "list", "--json", "--db", db_url],
                             env={"COLUMNS": "200", "NO_COLOR": "1"})
    new = in_process("dynamic", "list", "--json", "--db", db_url)
    assert old.exit_code == new.exit_code == 0, old.output
    assert old.stdout == new.stdout
    assert "`treadle workers` is deprecated; use `treadle dynamic`" in old.stderr
    assert "deprecated" not in new.stderr
    commands = [line.split()[1] for line in in_process("--help").stdout.splitlines()
                if line.startswith("│ ") and len(line.split()) > 1]
    assert "dynamic" in commands and "workers" not in commands  # hidden from --help
