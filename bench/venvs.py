"""Per-peer virtualenvs under bench/.venvs/<peer>, with pinned versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import PEERS_DIR, VENVS_DIR, log

# Pinned peer versions (latest on PyPI when the benchmark was written).
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "procrastinate": ["procrastinate==3.10.0", "psycopg[binary]==3.3.9"],
    "celery": ["celery[redis]==5.7.0"],
    "dbos": ["dbos==3.4.0", "psycopg[binary]==3.3.9"],
    "huey": ["huey==3.5.4", "redis==8.1.0"],
    "dramatiq": ["dramatiq[redis]==2.2.1", "redis==8.1.0"],
}
PEER_SCRIPTS: dict[str, str] = {
    "procrastinate": "procrastinate_bench.py",
    "celery": "celery_bench.py",
    "dbos": "dbos_bench.py",
    "huey": "huey_bench.py",
    "dramatiq": "dramatiq_bench.py",
}


def venv_python(peer: str) -> Path:
    return VENVS_DIR / peer / "bin" / "python"


def ensure_venv(peer: str) -> Path:
    """Create bench/.venvs/<peer> and install its pinned requirements (once)."""
    reqs = PEER_REQUIREMENTS[peer]
    vdir = VENVS_DIR / peer
    marker = vdir / "bench-requirements.json"
    py = venv_python(peer)
    if py.exists() and marker.exists() and json.loads(marker.read_text()) == reqs:
        return py
    log(f"creating virtualenv for {peer}: {' '.join(reqs)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(vdir)], check=True)
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install for {peer} failed:\n{proc.stderr[-4000:]}")
    marker.write_text(json.dumps(reqs))
    return py


def run_peer(peer: str, command: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run a peer-side benchmark command in the peer's venv; parse its last stdout line."""
    py = venv_python(peer)
    script = PEERS_DIR / PEER_SCRIPTS[peer]
    proc = subprocess.run(
        [str(py), str(script), command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PEERS_DIR,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{peer} {command} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"{peer} {command} printed nothing; stderr:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
