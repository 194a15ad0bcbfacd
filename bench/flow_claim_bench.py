"""Claim latency micro-measure for per-key flow control (ADR 0010): one ``store.claim``
with ``limit=1`` over 10,000 queued jobs of a task without limits, and (``--dual``) with
200 jobs of a task with both a concurrency and a rate limit also queued, their keys full.

Measures whichever tree the interpreter imports, so the same script compares two
checkouts: run it with each one's ``.venv/bin/python``, interleaved (results: JSON lines on
stdout; ``bench/results/flow-claim.md`` holds the committed figures).

    .venv/bin/python -m bench.flow_claim_bench --backend sqlite [--dual]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import fresh_pg_database, latency_summary


def measure(url: str, *, dual: bool, jobs: int, samples: int) -> dict[str, float]:
    from treadle import Treadle

    app = Treadle(url)
    app.migrate()

    @app.task(name="plain")
    def plain(n: int) -> None:
        return None

    for start in range(0, jobs, 1000):
        plain.defer_many([{"n": i} for i in range(start, min(jobs, start + 1000))])
    if dual:
        limited = app.task(name="limited", concurrency=("u:{u}", 1),
                           rate_limit=("api:{v}", 1, 3600))(lambda u, v: None)
        limited.defer_many([{"u": f"u{i % 20}", "v": f"v{i % 10}"} for i in range(200)])
        # fill every key: the first claims take one job per rate key, then all wait
        while any(j.task == "limited" for j in app.store.claim(
                queues=None, worker="fill", limit=50, lease_seconds=3600)):
            pass
    for _ in range(20):  # warm-up
        app.store.claim(queues=None, worker="w", limit=1, lease_seconds=60)
    out: list[float] = []
    for _ in range(samples):
        t = time.perf_counter()
        got = app.store.claim(queues=None, worker="w", limit=1, lease_seconds=60)
        out.append((time.perf_counter() - t) * 1000)
        assert len(got) == 1 and got[0].task == "plain"
    app.close()
    return latency_summary(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    ap.add_argument("--dual", action="store_true")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            res = measure(f"sqlite:///{Path(tmp) / 'b.db'}", dual=args.dual, jobs=args.jobs,
                          samples=args.samples)
    else:
        with fresh_pg_database("treadle_flowclaim") as url:
            res = measure(url, dual=args.dual, jobs=args.jobs, samples=args.samples)
    print(json.dumps({"label": args.label, "backend": args.backend, "dual": args.dual, **res}))


if __name__ == "__main__":
    main()
