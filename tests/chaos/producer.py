"""A producer process as a user writes one: the test drives it over stdin.

Each line read is a command; each answer is one JSON line on stdout:
``defer`` -> {"id": ...}; ``get ID`` -> {"status": ...}; ``wait ID`` -> {"waiting": ID}
once it is about to wait, then {"status": ...}.
Any exception is answered as {"error": "<class>: <message>"} and the process goes on,
so the test sees exactly what a caller would. Nothing here configures logging: whatever
reaches stderr is what an application that never set up logging would print.
"""

from __future__ import annotations

import json
import sys

from treadle import Treadle
from treadle.app import JobHandle


def main(url: str) -> None:
    app = Treadle(url)
    noop = app.task(name="noop", retries=0)(lambda: None)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "defer":
                answer: dict[str, object] = {"id": noop.defer().id}
            elif cmd == "get":
                answer = {"status": app.get_job(int(arg)).status.value}
            elif cmd == "wait":
                job = app.get_job(int(arg))
                print(json.dumps({"waiting": job.id}), flush=True)  # the test may act now
                answer = {"status": JobHandle(app, job).wait(timeout=60).status.value}
            else:
                answer = {"error": f"unknown command {cmd!r}"}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    app.close()


if __name__ == "__main__":
    main(sys.argv[1])
