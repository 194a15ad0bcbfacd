"""The app ``make run`` serves: work moving on the dashboard within seconds.

    treadle up --app examples.starter.app:app        # what `make run` does

* three tasks: ``resize`` (progress on its live stream), ``send_email`` (fails now and
  then with a transient error, so you see retries) and ``checksum`` (emits items);
* ``feed``, a periodic task (every 20 s, and once at start), submits a handful of those
  jobs and a run of ``word-count``, a dynamic worker (JavaScript in a V8 sandbox) it
  registers the first time;
* ``heartbeat``, a cron schedule (every minute) that only logs.

Open http://127.0.0.1:8787/ to watch them; ``treadle jobs list`` and ``treadle jobs
watch ID`` (add ``--url http://127.0.0.1:8787`` to go through the API) in a terminal.
Your own app: ``treadle up --app myproject.tasks:app`` (``make run APP=...``).
"""

from __future__ import annotations

import hashlib
import os
import random
import time

from treadle import JobContext, Transient, Treadle
from treadle.core.errors import ConfigurationError

app = Treadle(os.environ.get("TREADLE_DATABASE_URL", "sqlite:///treadle.db"))

WORD_COUNT = """
async function handler(input, env) {
  const words = String(input.text).split(/\\s+/).filter(Boolean);
  const counts = {};
  for (const w of words) {
    const k = w.toLowerCase();
    counts[k] = (counts[k] || 0) + 1;
    await env.emit('word', {word: k, seen: counts[k]});
  }
  console.log('counted', words.length, 'words');
  return {words: words.length, distinct: Object.keys(counts).length};
}
"""
TEXT = "the database is the queue and the queue is the database"


@app.task(name="resize", retries=2, timeout=30, pass_context=True)
def resize(image: str, width: int, ctx: JobContext) -> dict[str, object]:
    steps = 8
    for i in range(steps):
        ctx.check()  # cancellable from the dashboard
        time.sleep(random.uniform(0.05, 0.25))
        ctx.progress(i + 1, steps, f"row block {i + 1}")
    return {"image": f"{image}@{width}w"}


@app.task(name="send_email", retries=3, timeout=10)
def send_email(to: str, subject: str) -> str:
    time.sleep(random.uniform(0.05, 0.3))
    if random.random() < 0.3:
        raise Transient("mail server said 421, try again later")  # retried with backoff
    return f"sent {subject!r} to {to}"


@app.task(name="checksum", retries=0, pass_context=True)
def checksum(text: str, rounds: int, ctx: JobContext) -> str:
    digest = text.encode()
    for i in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if i % 1000 == 0:
            ctx.emit("round", {"i": i, "digest": digest.hex()[:12]})
    return digest.hex()


@app.periodic(every=20, name="feed", retries=0)
def feed() -> dict[str, object]:
    """Submit some work (at start and every 20 s)."""
    for n in range(3):
        resize.defer(image=f"photos/{random.randint(1000, 9999)}.jpg", width=320 * (n + 1))
    for who in ("ada@example.com", "alan@example.com"):
        send_email.defer(to=who, subject="Your weekly digest")
    checksum.defer(text="treadle", rounds=random.randint(2000, 6000))
    return {"submitted": 6, "dynamic": _run_word_count()}


def _run_word_count() -> str:
    """Register the dynamic worker (idempotent: its id hashes its code) and run it."""
    try:
        registry = app.dynamic_workers
    except ConfigurationError:  # served by something that did not add dynamic workers
        return "not enabled"
    worker = registry.register(WORD_COUNT, "javascript", {"timeout": 5}, name="word-count")
    registry.run(worker.id, {"text": TEXT})
    return worker.id


@app.cron("* * * * *", name="heartbeat", retries=0, pass_context=True)
def heartbeat(ctx: JobContext) -> None:
    ctx.log("still here")
