"""cli: adapter: prompt on stdin, JSON or text answers, a hanging command's group killed."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from treadle.agents.adapters.cli import CliAdapter
from treadle.agents.messages import ModelRequest, ToolSpec
from treadle.core.errors import Timeout, Transient

REQ = ModelRequest("sys", [{"role": "user", "content": "hello"}],
                   [ToolSpec("t", "d", {"type": "object"})], turn=0)


def _script(tmp_path: Path, body: str) -> str:
    p = tmp_path / "model.py"
    p.write_text(body)
    return f"{sys.executable} {p}"


def test_text_answer_reads_stdin(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "import sys\ndata = sys.stdin.read()\nprint('got', len(data), "
                            "'[user]' in data)\n")
    res = CliAdapter(cmd).complete(REQ)
    assert res.text.startswith("got ") and res.text.endswith("True")
    assert res.usage.input_tokens > 0


def test_json_answer_calls_tools(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "import json,sys\nsys.stdin.read()\nprint(json.dumps({"
                            "'content': '', 'tool_calls': [{'name': 't', 'arguments': {'a': 1}}],"
                            "'usage': {'input_tokens': 9, 'output_tokens': 3}}))\n")
    res = CliAdapter(cmd).complete(REQ)
    assert res.tool_calls[0].name == "t" and res.tool_calls[0].arguments == '{"a": 1}'
    assert (res.usage.input_tokens, res.usage.output_tokens) == (9, 3)


def test_hanging_command_group_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    cmd = _script(tmp_path, f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pidfile)!r}, "w").write(str(child.pid))
time.sleep(60)
""")
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        CliAdapter(cmd, timeout=1.0).complete(REQ)
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie (killed, not yet reaped by its dead parent's reaper) counts as gone
        stat = Path(f"/proc/{child}/stat")
        if stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the command's child survived the timeout")


def test_failing_command_is_transient(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "import sys\nsys.stderr.write('boom')\nsys.exit(3)\n")
    with pytest.raises(Transient, match="boom"):
        CliAdapter(cmd).complete(REQ)


def test_huge_output_is_bounded(tmp_path: Path) -> None:
    cmd = _script(tmp_path, "import sys\nsys.stdout.write('x' * (20 << 20))\n")
    res = CliAdapter(cmd).complete(REQ)
    assert len(res.text) <= 4 << 20
