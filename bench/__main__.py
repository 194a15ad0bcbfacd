"""``python -m bench``: run the core benchmarks (see bench/runner.py)."""

from bench.runner import main

raise SystemExit(main())
