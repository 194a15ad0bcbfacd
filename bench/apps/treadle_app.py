"""The Treadle app the benchmark's workers load (``--app bench.apps.treadle_app:app``).

The database URL comes from ``TREADLE_DATABASE_URL`` (the CLI sets it from ``--db``). The
harness never imports this module (it would open a store at import); it builds its own
instance per fresh database with :func:`bench.apps.noop_tasks.build_app`.
"""

from __future__ import annotations

import os

from bench.apps.noop_tasks import build_app

app = build_app(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle-bench.db"))
