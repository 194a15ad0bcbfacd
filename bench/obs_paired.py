"""The usage row's cost in ``store.complete``, paired within one process.

``obs_bench``'s ``complete`` compares separate runs, so load drift between them lands in
the ratio. Here one database is filled once and its claimed batches of 100 alternate
with and without usage, so both halves see the same load; the source tree under test is
whichever ``treadle`` is first on ``PYTHONPATH``.

    PYTHONPATH=/path/to/src .venv/bin/python -m bench.obs_paired [--backend postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.obs_bench import _app, _drop_created, _fresh
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage


def paired(url: str, jobs: int) -> tuple[float, float]:
    """(µs/job without usage, µs/job with usage), alternating batches of 100."""
    app = _app(url)
    try:
        app.get_task("noop").defer_many([{}] * jobs)
        usage = Usage(wall_seconds=0.01, cpu_seconds=0.005, result_bytes=4, log_bytes=10)
        spent = {False: 0.0, True: 0.0}
        done = {False: 0, True: 0}
        flag = True
        while claimed := app.store.claim(queues=None, worker="bench", limit=100,
                                         lease_seconds=60):
            outs = [Outcome(j.id, j.lease_token, OutcomeKind.SUCCEEDED, "bench",
                            usage=usage if flag else None) for j in claimed]
            t0 = time.perf_counter()
            app.store.complete(outs)
            spent[flag] += time.perf_counter() - t0
            done[flag] += len(outs)
            flag = not flag
        return (spent[False] / done[False] * 1e6, spent[True] / done[True] * 1e6)
    finally:
        app.close()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", default="sqlite", choices=("sqlite", "postgres"))
    p.add_argument("--jobs", type=int, default=4000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            without, with_ = paired(_fresh(args.backend, Path(tmp), 0), args.jobs)
        finally:
            _drop_created()
    print(f"{args.backend} us/job without {without:.1f} with {with_:.1f} "
          f"ratio {with_ / without:.2f}")


if __name__ == "__main__":
    main()
