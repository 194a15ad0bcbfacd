"""Which workflow step is running: artifacts put inside one are recorded against it."""

from __future__ import annotations

import importlib


def current_step() -> str | None:
    """The workflow step running now (``ctx.step``), recorded with what it puts."""

    try:  # workflows are optional here: artifacts are older than any one kind
        workflows = importlib.import_module("treadle.workflows.context")
    except ImportError:
        return None
    key = workflows.current_step_key()
    # "treadle:<job id>:<step name>": the name may itself contain colons.
    return key.split(":", 2)[2] if key and key.count(":") >= 2 else None
