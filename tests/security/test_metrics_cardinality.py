"""A tenant that names a fresh queue (or sends a made-up HTTP method) per request must not
grow ``/metrics`` and the process's memory without bound: label values are capped per
process, and what is past the cap is counted under one series."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from treadle import Treadle
from treadle.api.metrics import OTHER, Metrics
from treadle.core.job import Job, JobKind, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage

NOW = datetime.now(UTC)


def _series(text: str, metric: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in an exposition."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(rf"{metric}\{{(.*)\}} (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_queue_names_past_the_cap_are_counted_as_one_other_series() -> None:
    m = Metrics(max_label_values=3)
    for i in range(50):
        m.count_enqueued(f"q{i % 10}")
    got = _series(m.render().decode(), "treadle_jobs_enqueued_total")
    assert got == {'queue="q0"': 5.0, 'queue="q1"': 5.0, 'queue="q2"': 5.0,
                   f'queue="{OTHER}"': 35.0}


def test_worker_counters_cap_queue_and_tenant_names_alike() -> None:
    m = Metrics(max_label_values=2)
    observer = m.observer()
    for i in range(6):
        job = Job(id=i, queue=f"queue-{i}", kind=JobKind.TASK, task="t", payload={},
                  status=JobStatus.RUNNING, priority=0, run_at=NOW, attempt=1,
                  max_attempts=1, timeout=None, tenant=f"tenant-{i}", created_at=NOW)
        usage = Usage(wall_seconds=0.1, cpu_seconds=1.0)
        observer.finished("w", job, Outcome(i, 1, OutcomeKind.SUCCEEDED, "w", usage=usage),
                          0.1)
    text = m.render().decode()
    completed = _series(text, "treadle_jobs_completed_total")
    assert len(completed) == 3 and completed[f'outcome="succeeded",queue="{OTHER}"'] == 4.0
    cpu = _series(text, "treadle_attempt_cpu_seconds_total")
    assert cpu == {'queue="queue-0",tenant="tenant-0"': 1.0,
                   'queue="queue-1",tenant="tenant-1"': 1.0,
                   f'queue="{OTHER}",tenant="{OTHER}"': 4.0}


def test_scrape_shows_the_busiest_queues_and_folds_the_rest(db_url: str) -> None:
    app = Treadle(db_url)
    try:
        # Queue qN holds N + 1 queued jobs: q5, q4, q3 are the busiest.
        app.enqueue([NewJob(task="t", queue=f"q{n}") for n in range(6) for _ in range(n + 1)])
        m = Metrics(max_label_values=3)
        m.bind(app)
        got = _series(m.render().decode(), "treadle_jobs")
        queued = {k: v for k, v in got.items() if 'state="queued"' in k}
        assert queued == {'queue="q5",state="queued"': 6.0, 'queue="q4",state="queued"': 5.0,
                          'queue="q3",state="queued"': 4.0,
                          f'queue="{OTHER}",state="queued"': 1.0 + 2.0 + 3.0}
    finally:
        app.close()


def test_unknown_http_methods_share_one_series() -> None:
    m = Metrics()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def noop_send(message: Any) -> None:
        return None

    wrapped = m.middleware(app)

    async def request(scope: dict[str, Any]) -> None:
        await wrapped(scope, None, noop_send)

    for i in range(100):
        scope = {"type": "http", "method": f"BREW{i}", "path": "/x"}
        asyncio.run(request(scope))
    asyncio.run(request({"type": "http", "method": "GET", "path": "/x"}))
    got = _series(m.render().decode(), "treadle_http_requests_total")
    assert got == {'method="other",route="unmatched",status="405"': 100.0,
                   'method="GET",route="unmatched",status="405"': 1.0}
