"""``treadle media process INPUT``: start a media pipeline; the job id is the last line.

INPUT is a local file (probed here first: bad input is refused before anything is
stored), an ``http(s)://`` URL (fetched by the worker under the egress policy), or
``artifact:ID``. ``--wait`` waits for the job (a worker must be running, or pass
``--worker`` to run one in this process for the job's duration).
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from treadle.cli.common import (
    AppOption,
    DbOption,
    clean_errors,
    err_console,
    fail,
    local_app,
)

media_app = typer.Typer(help="Media pipelines: renditions, thumbnails, HLS, audio.",
                        no_args_is_help=True)


def _source(value: str) -> Any:
    if value.startswith(("http://", "https://")):
        return {"url": value}
    if value.startswith("artifact:"):
        try:
            return {"artifact": int(value.removeprefix("artifact:"))}
        except ValueError:
            fail(f"not an artifact id: {value!r}")
    return value  # a local path


@media_app.command("process")
def process(
    input_: Annotated[str, typer.Argument(metavar="INPUT",
                                          help="A file, an http(s) URL or artifact:ID.")],
    renditions: Annotated[str, typer.Option(help="Comma-separated, e.g. 360p,720p "
                                                  "('' for none).")] = "360p,720p",
    thumbnails: Annotated[int, typer.Option(min=0, max=100)] = 4,
    hls: Annotated[bool, typer.Option("--hls", help="Package the renditions as HLS.")]
    = False,
    audio: Annotated[bool, typer.Option("--audio", help="Extract the audio (AAC .m4a).")]
    = False,
    segment_seconds: Annotated[float, typer.Option(help="Target segment length.")] = 10.0,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to finish.")] = False,
    worker: Annotated[bool, typer.Option(
        "--worker", help="With --wait: run a worker in this process until the job ends.")]
    = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600.0,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Start a pipeline (a durable workflow); print its job id on the last line."""
    from treadle.media.pipeline import submit

    with clean_errors(), local_app(db, app_spec) as app:
        app.check_schema()
        names = [r for r in renditions.split(",") if r.strip()]
        handle = submit(app, _source(input_), renditions=names, thumbnails=thumbnails,
                        hls=hls, audio=audio, segment_seconds=segment_seconds)
        if wait:
            job = _wait(app, handle.id, timeout, worker)
            for a in app.job_artifacts(job.id):
                if not a.name.startswith("work/"):
                    err_console.print(f"  {a.id:>6}  {escape(a.name)}  ({a.size} bytes)",
                                      highlight=False)
            if job.status.value != "succeeded":
                err_console.print(f"job {job.id}: {job.status.value}: "
                                  f"{escape(job.error.message if job.error else '')}")
                print(job.id)
                raise typer.Exit(1)
        print(handle.id)


def _wait(app: Any, job_id: int, timeout: float, run_worker: bool) -> Any:
    stop = threading.Event()
    runner = None
    if run_worker:
        from treadle.cli.run import build_worker
        from treadle.worker import WorkerConfig

        w = build_worker(app, WorkerConfig(concurrency=2, poll_interval=0.2,
                                           shutdown_grace=5.0))
        runner = threading.Thread(target=w.run, name="media-worker", daemon=True)
        runner.start()
        stop_worker = w.stop
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            logs = app.job_logs(job_id)
            for entry in logs[seen:]:
                err_console.print(f"[dim]{escape(entry.message)}[/]", highlight=False)
            seen = len(logs)
            job = app.get_job(job_id)
            if job.is_finished:
                return job
            if time.monotonic() > deadline:
                fail(f"job {job_id} not finished after {timeout:.0f} s (still {job.status.value})")
            stop.wait(0.5)
    finally:
        if runner is not None:
            stop_worker()
            runner.join(30)
