"""``treadle jobs list|show|watch|cancel|retry|release|discard`` and ``treadle submit``."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from treadle.app import WaitTimeout
from treadle.cli.common import (
    AppOption,
    DbOption,
    clean_errors,
    console,
    fail,
    json_option,
    local_app,
)
from treadle.cli.remote import KeyOption, UrlOption, remote
from treadle.core.job import Job, JobFilter, JobKind
from treadle.core.lifecycle import JobStatus
from treadle.kinds import use_builtin
from treadle.streams import cli as streams_cli

if TYPE_CHECKING:
    from treadle.client import Client

jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)

_STATUS_STYLE = {"queued": "cyan", "running": "yellow", "succeeded": "green", "failed": "red",
                 "cancelled": "dim", "waiting": "magenta", "quarantined": "bold red"}


def _status(job: Job) -> str:
    return f"[{_STATUS_STYLE[job.status.value]}]{job.status.value}[/]"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


@jobs_app.command("list")
def list_jobs(
    db: DbOption = None,
    status: Annotated[list[str] | None, typer.Option(help="Filter by status (repeatable).")] = None,
    queue: Annotated[str | None, typer.Option(help="Filter by queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Filter by task name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    before: Annotated[int | None, typer.Option(help="Cursor: only ids below this.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List jobs, newest first."""
    with clean_errors():
        statuses = []
        for s in status or []:
            try:
                statuses.append(JobStatus(s))
            except ValueError:
                fail(f"unknown status {s!r}; use one of {', '.join(x.value for x in JobStatus)}")
        client = remote(url, key)
        if client is not None:
            with client:
                jobs = _list_remote(client, statuses, queue, task, limit, before)
        else:
            with local_app(db) as app:
                app.check_schema()
                jobs = app.list_jobs(JobFilter(statuses=statuses, queue=queue, task=task,
                                               limit=limit, before_id=before))
        if as_json:
            _print_json([j.to_json() for j in jobs])
            return
        table = Table("id", "task", "queue", "status", "attempt", "created", "error")
        for j in jobs:
            table.add_row(str(j.id), j.task, j.queue, _status(j), f"{j.attempt}/{j.max_attempts}",
                          j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                          f"{j.error.error_class.value}: {j.error.message[:60]}" if j.error else "")
        console.print(table)


def _list_remote(client: Client, statuses: list[JobStatus], queue: str | None,
                 task: str | None, limit: int, before: int | None) -> list[Job]:
    jobs: list[Job] = []
    cursor = before
    while len(jobs) < limit:  # the API pages by at most 500
        page = client.list_jobs(statuses=list(statuses), queue=queue, task=task,
                                cursor=cursor, limit=min(500, limit - len(jobs)))
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return jobs


# Live streams bring their own command (docs/streams.md).
jobs_app.command("watch")(streams_cli.watch)


@jobs_app.command("show")
def show(
    job_id: int,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one job with its events and logs."""
    with clean_errors(), contextlib.ExitStack() as closing:
        client = remote(url, key)
        app: Any = client if client is not None else closing.enter_context(local_app(db))
        job = app.get_job(job_id)
        if client is not None:
            with client:
                events, logs = client.events(job_id), client.logs(job_id)
                why = client.why_not_running(job)
        else:
            events, logs = app.job_events(job_id), app.job_logs(job_id)
            why = app.why_not_running(job)
        if as_json:
            _print_json({**job.to_json(), "waiting_on": why,
                         "events": [e.to_json() for e in events],
                         "logs": [entry.to_json() for entry in logs]})
            return
        table = Table(show_header=False, title=f"job {job.id}")
        for key, value in job.to_json().items():
            if key == "status":
                value = _status(job)
            elif isinstance(value, dict | list):
                value = json.dumps(value)[:400]
            table.add_row(key, "" if value is None else str(value))
        if why is not None:
            table.add_row("waiting on", f"{why['rule']}: {why['message']}")
        console.print(table)
        ev = Table("at", "from", "to", "attempt", "worker", "reason", title="events")
        for e in events:
            ev.add_row(e.at.strftime("%H:%M:%S.%f")[:-3], e.from_status or "", e.to_status.value,
                       str(e.attempt), e.worker or "", e.reason)
        console.print(ev)
        if job.kind is JobKind.WORKFLOW and client is None:
            from treadle.workflows.render import steps_tree

            console.print(steps_tree(use_builtin(app), job))
        for entry in logs:
            console.print(f"[dim]attempt {entry.attempt}[/] {entry.message}", highlight=False)


@jobs_app.command("cancel")
def cancel(job_id: int, db: DbOption = None, url: UrlOption = None,
           key: KeyOption = None) -> None:
    """Cancel a job: queued jobs at once, running ones are stopped by their worker."""
    with clean_errors():
        client = remote(url, key)
        if client is not None:
            with client:
                job = client.cancel(job_id)
        else:
            with local_app(db) as app:
                job = app.cancel(job_id)
        note = " (its worker has been told to stop)" if job.cancel_requested else ""
        console.print(f"job {job.id}: {_status(job)}{note}")


@jobs_app.command("retry")
def retry(job_id: int, db: DbOption = None, url: UrlOption = None,
          key: KeyOption = None) -> None:
    """Re-queue a failed or cancelled job for one more attempt."""
    with clean_errors():
        client = remote(url, key)
        if client is not None:  # the server refuses other states with a clear 409
            with client:
                job = client.retry(job_id)
            console.print(f"job {job.id}: {_status(job)}")
            return
        with local_app(db) as app:
            before = app.get_job(job_id)
            if before.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                fail(f"job {job_id} is {before.status.value}; "
                     "only failed or cancelled jobs are retried")
            job = app.retry(job_id)
            console.print(f"job {job.id}: {_status(job)}")


@jobs_app.command("release")
def release(job_id: int, db: DbOption = None, url: UrlOption = None,
            key: KeyOption = None) -> None:
    """Release a quarantined job: queued again with its crash count reset (ADR 0015)."""
    _leave_quarantine(job_id, db, url, key, "release")


@jobs_app.command("discard")
def discard(job_id: int, db: DbOption = None, url: UrlOption = None,
            key: KeyOption = None) -> None:
    """Discard a quarantined job: failed for good, not run again (ADR 0015)."""
    _leave_quarantine(job_id, db, url, key, "discard")


def _leave_quarantine(job_id: int, db: str | None, url: str | None, key: str | None,
                      action: str) -> None:
    with clean_errors():
        client = remote(url, key)
        if client is not None:  # the server refuses other states with a clear 409
            with client:
                job = (client.release if action == "release" else client.discard)(job_id)
            console.print(f"job {job.id}: {_status(job)}")
            return
        with local_app(db) as app:
            before = app.get_job(job_id)
            if before.status is not JobStatus.QUARANTINED:
                fail(f"job {job_id} is {before.status.value}; only quarantined jobs are "
                     f"{action}d")
            job = (app.release if action == "release" else app.discard)(job_id)
            console.print(f"job {job.id}: {_status(job)}")


def submit(
    task: Annotated[str, typer.Argument(help="Task name, as registered with @app.task.")],
    payload: Annotated[str, typer.Option(help="JSON object passed as the task's keyword args.")]
    = "{}",
    count: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many jobs.")] = 1,
    wait: Annotated[bool, typer.Option(help="Wait for the jobs to finish.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 300.0,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Enqueue COUNT jobs of TASK with PAYLOAD."""
    with clean_errors():
        data = json_option("--payload", payload)
        if not timeout >= 0:  # NaN too: refused before anything is submitted
            fail("--timeout must be a number of seconds >= 0")
        if not isinstance(data, dict):
            fail("--payload must be a JSON object, e.g. '{\"x\": 1}'")
        if idempotency_key and count > 1:
            fail("--idempotency-key names one job; it cannot be used with --count > 1")
        client = remote(url, key)
        if client is not None:
            with client:
                _submit_remote(client, task, data, count, wait, timeout, idempotency_key,
                               as_json)
            return
        with local_app(db, app_spec) as app:
            t = app.get_task(task)
            app.check_schema()
            handles = []
            with _progress(count > 1 and not as_json) as progress:
                bar = progress.add_task("enqueued", total=count)
                for start in range(0, count, 1000):
                    n = min(1000, count - start)
                    jobs = [t.new_job(data, idempotency_key=idempotency_key)
                            for _ in range(n)]
                    handles.extend(app.enqueue(jobs))
                    progress.update(bar, advance=n)
            if not wait:
                _print_enqueued([h.job for h in handles], as_json)
                return
            _wait_all(app, [h.id for h in handles], timeout, as_json)


def _submit_remote(client: Client, task: str, data: dict[str, Any], count: int, wait: bool,
                   timeout: float, idempotency_key: str | None, as_json: bool) -> None:
    handles = []
    with _progress(count > 1 and not as_json) as progress:
        bar = progress.add_task("enqueued", total=count)
        for _ in range(count):  # one request each; the server coalesces concurrent writes
            handles.append(client.submit(task, data, idempotency_key=idempotency_key))
            progress.update(bar, advance=1)
    if not wait:
        _print_enqueued([h.job for h in handles], as_json)
        return
    deadline = time.monotonic() + timeout
    jobs: list[Job] = []
    pending: set[int] = set()
    with _progress(not as_json) as progress:
        bar = progress.add_task("finished", total=len(handles))
        for h in handles:
            try:
                jobs.append(client.wait(h.id, max(0.001, deadline - time.monotonic())))
                progress.update(bar, advance=1)
            except WaitTimeout:
                jobs.append(client.get_job(h.id))
                pending.add(h.id)
    _report(jobs, pending, timeout, as_json)


def _print_enqueued(jobs: list[Job], as_json: bool) -> None:
    if as_json:
        _print_json([j.to_json() for j in jobs])
    else:
        ids = [j.id for j in jobs]
        shown = ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")
        console.print(f"enqueued {len(ids)} job(s): {shown}")


def _wait_all(app: Any, ids: list[int], timeout: float, as_json: bool) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    with _progress(not as_json) as progress:
        bar = progress.add_task("finished", total=len(ids))
        while pending and time.monotonic() < deadline:
            chunk = sorted(pending)[:500]
            app.store.wait_for_finish(chunk, min(1.0, max(0.0, deadline - time.monotonic())))
            done = {i for i in chunk if app.get_job(i).is_finished}
            pending -= done
            progress.update(bar, advance=len(done))
    _report([app.get_job(i) for i in ids], pending, timeout, as_json)


def _report(jobs: list[Job], pending: set[int], timeout: float, as_json: bool) -> None:
    if as_json:
        _print_json([j.to_json() for j in jobs])
    elif len(jobs) == 1:
        j = jobs[0]
        console.print(f"job {j.id}: {_status(j)}")
        if j.result is not None:
            print(json.dumps(j.result))
        if j.error:
            console.print(f"[red]{j.error.error_class.value}[/]: {j.error.message}")
    else:
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j.status.value] = counts.get(j.status.value, 0) + 1
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if pending:
        fail(f"{len(pending)} job(s) not finished after {timeout}s", code=1)
    if any(j.status is not JobStatus.SUCCEEDED for j in jobs):
        raise typer.Exit(1)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not enabled, transient=False,
    )
