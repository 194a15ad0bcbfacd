"""``treadle artifacts list|get|purge`` as a user runs them (a real process, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from treadle import Treadle
from treadle.core.job import NewJob

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT)}
    full.pop("TREADLE_ARTIFACTS_URL", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "treadle", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


def _seed(url: str, **kw: Any) -> tuple[int, int]:
    app = Treadle(url, **kw)
    app.migrate()
    try:
        job = app.store.enqueue([NewJob(task="t", payload={})])[0].job.id
        art = app.artifacts.put(job, "deep/dir/out.txt", b"hello cli", tenant="default")
        return job, art.id
    finally:
        app.close()


def test_list_get_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    job, art = _seed(url)
    listed = _cli("artifacts", "list", str(job), "--db", url, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["deep/dir/out.txt"]
    got = _cli("artifacts", "get", str(art), "--db", url, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out.txt").read_bytes() == b"hello cli"  # last segment, in the cwd
    again = _cli("artifacts", "get", str(art), "--db", url, cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    out = _cli("artifacts", "get", str(art), "-o", "-", "--db", url, cwd=tmp_path)
    assert out.stdout == "hello cli"
    missing = _cli("artifacts", "get", "999", "--db", url, cwd=tmp_path)
    assert missing.returncode == 2 and "artifact 999 not found" in missing.stderr
    purged = _cli("artifacts", "purge", str(job), "--db", url, cwd=tmp_path)
    assert purged.returncode == 0 and "1 stored file(s) deleted" in purged.stdout


def test_artifacts_url_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    store = tmp_path / "elsewhere"
    _, art = _seed(url, artifacts=store.as_uri())
    env = {"TREADLE_ARTIFACTS_URL": store.as_uri()}
    got = _cli("artifacts", "get", str(art), "-o", "-", "--db", url, cwd=tmp_path, env=env)
    assert got.returncode == 0 and got.stdout == "hello cli"
    # Without it the default store (beside the database) has no such bytes: a clear error.
    lost = _cli("artifacts", "get", str(art), "-o", "-", "--db", url, cwd=tmp_path)
    assert lost.returncode == 2 and "missing" in lost.stderr
