"""The Treadle app the workflow benchmark's workers load (``bench.apps.workflow_app:app``).

The database URL comes from ``TREADLE_DATABASE_URL`` (the CLI sets it from ``--db``). The
harness builds its own instance per fresh database with
:func:`bench.apps.workflow_tasks.build_app` and never imports this module.
"""

from __future__ import annotations

import os

from bench.apps.workflow_tasks import build_app

app = build_app(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-bench.db"))
