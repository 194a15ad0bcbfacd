"""Sandbox tests need bubblewrap: install it when we can, skip with the reason when not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_bwrap() -> None:
    """Install bwrap (root, Debian) if missing; skip the test if it still is not there."""
    if shutil.which("bwrap") is None and os.geteuid() == 0:
        subprocess.run(["sh", str(ROOT / "scripts/deps/bubblewrap.sh")], check=False)
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed and could not be installed")
