"""The Treadle app the hand-off benchmark's workers load (``bench.apps.append_app:app``);
the database URL comes from ``TREADLE_DATABASE_URL`` (the CLI sets it from ``--db``)."""

from __future__ import annotations

import os

from bench.apps.append_tasks import build_app

app = build_app(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-bench.db"))
