"""``treadle dynamic register|run|list|show``: dynamic workers from the command line.

The sub-command of the :class:`~treadle.dynamic.DynamicWorkers` plug-in (ADR 0008). With
``--url/--key`` every command goes through a server's HTTP API (the remote client, ADR
0020); the key then decides the tenant."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from treadle.app import Treadle, WaitTimeout
from treadle.cli.common import (
    DbOption,
    clean_errors,
    console,
    err_console,
    fail,
    json_option,
    load_app,
)
from treadle.cli.remote import KeyOption, UrlOption, remote
from treadle.core.job import DEFAULT_TENANT, Job, JobLog
from treadle.core.lifecycle import JobStatus
from treadle.dynamic.plugin import DynamicWorkers
from treadle.dynamic.registry import WorkerRegistry, as_language
from treadle.dynamic.repo import DynamicWorker
from treadle.kinds import use_builtin

if TYPE_CHECKING:
    from treadle.api.models import WorkerOut
    from treadle.client import Client

workers_app = typer.Typer(
    help="Dynamic workers: register sandboxed JavaScript/Python code and run it as jobs.",
    no_args_is_help=True,
)

_EXTENSIONS = {".js": "javascript", ".cjs": "javascript", ".py": "python"}

TenantOption = Annotated[
    str, typer.Option(envvar="TREADLE_TENANT", help="Tenant that owns the worker.")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def _open(db: str | None) -> Iterator[tuple[Treadle, WorkerRegistry]]:
    app = use_builtin(load_app(None, db))
    try:
        app.check_schema()  # a clear "run treadle migrate" instead of a missing table
        yield app, app.plugin(DynamicWorkers).registry
    finally:
        app.close()  # PostgreSQL pools have threads; do not leave them to the GC


def _language(path: Path, given: str | None) -> str:
    if given:
        return as_language(given)
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        fail(f"cannot tell the language of {path.name}: use --language javascript|python")
    return found


@workers_app.command("register")
def register(
    file: Annotated[Path, typer.Argument(help="Source file: .js (classic script) or .py.")],
    language: Annotated[
        str | None, typer.Option(help="javascript or python (default: from the extension).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for humans.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-time limit per run, s.")] = None,
    cpu_seconds: Annotated[float | None, typer.Option(help="CPU-time limit per run.")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="Memory limit per run, MiB.")] = None,
    max_output_bytes: Annotated[int | None, typer.Option(help="Result size limit.")] = None,
    kv: Annotated[bool, typer.Option(help="Bind env.kv (the tenant's KV store).")] = False,
    fetch_allow: Annotated[
        list[str] | None,
        typer.Option(help="Allow env.fetch to this host or URL prefix (repeatable)."),
    ] = None,
    allow_wasm: Annotated[bool, typer.Option(help="Keep WebAssembly in JS isolates.")] = False,
    tenant: TenantOption = DEFAULT_TENANT,
    db: DbOption = None,
    as_json: JsonFlag = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Store FILE as a dynamic worker and print its id (same code + config, same id)."""
    with clean_errors():
        lang = _language(file, language)
        code = file.read_text(encoding="utf-8")
        given = {"timeout": timeout, "cpu_seconds": cpu_seconds, "memory_mb": memory_mb,
                 "max_output_bytes": max_output_bytes}
        limits = {k: v for k, v in given.items() if v is not None}
        client = remote(url, key)
        if client is not None:
            with client:
                out = client.register_dynamic_worker(
                    code, "python" if lang == "python" else "javascript", name=name,
                    limits=limits or None, allow_wasm=allow_wasm,
                    fetch_allow=list(fetch_allow or ()), kv=kv)
            if as_json:
                _print_json(out.model_dump(mode="json", exclude={"code"}))
            else:
                print(out.id)
            return
        with _open(db) as (_, workers):
            worker = workers.register(
                code, lang, limits, name=name, tenant=tenant, allow_wasm=allow_wasm,
                fetch_allow=tuple(fetch_allow or ()), kv=kv,
            )
        if as_json:
            _print_json(worker.to_json(code=False))
        else:
            print(worker.id)


@workers_app.command("run")
def run(
    worker_id: Annotated[str, typer.Argument(help="The id printed by `workers register`.")],
    input: Annotated[str, typer.Option("--input", help="JSON input for the handler.")] = "null",
    mode: Annotated[str, typer.Option(help="load (fresh sandbox) or get (warm).")] = "load",
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish.")] = True,
    wait_seconds: Annotated[float, typer.Option(min=0, help="How long to wait.")] = 60.0,
    limits: Annotated[
        str | None, typer.Option(help='Per-run limit overrides, JSON, e.g. {"timeout": 1}.')
    ] = None,
    tenant: TenantOption = DEFAULT_TENANT,
    db: DbOption = None,
    as_json: JsonFlag = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Run a worker once as a job; with --wait print its result (needs a running worker)."""
    with clean_errors():
        data = _json_option("--input", input)
        overrides = _json_option("--limits", limits) if limits is not None else None
        if overrides is not None and not isinstance(overrides, dict):
            fail('--limits must be a JSON object, e.g. \'{"timeout": 1}\'')
        if mode not in ("load", "get"):
            fail(f"--mode must be load or get, got {mode!r}")
        client = remote(url, key)
        if client is not None:
            with client:
                job = _run_remote(client, worker_id, data, mode, overrides, wait,
                                  wait_seconds, as_json)
        else:
            job = _run_local(db, worker_id, data, mode, tenant, overrides, wait, wait_seconds,
                             as_json)
        if job is None:  # enqueued without waiting
            return
        if not job.is_finished:
            fail(f"job {job.id} not finished after {wait_seconds:g}s "
                 f"(is a worker running? `treadle worker`); see `treadle jobs show {job.id}`",
                 code=1)
        if job.status is not JobStatus.SUCCEEDED:
            raise typer.Exit(1)


def _run_remote(client: Client, worker_id: str, data: Any, mode: str,
                overrides: dict[str, Any] | None, wait: bool, wait_seconds: float,
                as_json: bool) -> Job | None:
    handle = client.run_dynamic_worker(worker_id, data, mode="get" if mode == "get" else "load",
                                       limits=overrides, sync=False)
    if not wait:
        _enqueued(handle.job, as_json)
        return None
    try:
        job = handle.wait(wait_seconds)  # follows the job's stream over SSE
    except WaitTimeout:
        job = handle.refresh()
    _report(client.logs(job.id), job, as_json)
    return job


def _enqueued(job: Job, as_json: bool) -> None:
    if as_json:
        _print_json(job.to_json())
    else:
        console.print(f"enqueued job {job.id} ({job.task})")


def _run_local(db: str | None, worker_id: str, data: Any, mode: str, tenant: str,
               overrides: dict[str, Any] | None, wait: bool, wait_seconds: float,
               as_json: bool) -> Job | None:
    with _open(db) as (app, workers):
        handle = workers.run(worker_id, data, "get" if mode == "get" else "load",
                             tenant=tenant, limits=overrides)
        if not wait:
            _enqueued(handle.job, as_json)
            return None
        job = workers.wait(handle, wait_seconds).job
        _report(app.job_logs(job.id), job, as_json)
    return job


def _json_option(flag: str, text: str) -> Any:
    return json_option(flag, text)


def _report(logs: list[JobLog], job: Job, as_json: bool) -> None:
    if as_json:
        _print_json({**job.to_json(), "logs": [entry.to_json() for entry in logs]})
        return
    # Console output and status go to stderr so that stdout is exactly the result JSON.
    for entry in logs:
        err_console.print(f"[dim]log[/] {entry.message}", highlight=False, markup=False)
    err_console.print(f"job {job.id}: {job.status.value} (attempt {job.attempt})",
                      highlight=False)
    if job.error:
        err_console.print(f"{job.error.error_class.value}: {job.error.message}",
                          highlight=False, markup=False)
    if job.status is JobStatus.SUCCEEDED:
        print(json.dumps(job.result))


@workers_app.command("list")
def list_workers(
    tenant: TenantOption = DEFAULT_TENANT,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    db: DbOption = None,
    as_json: JsonFlag = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """List the tenant's dynamic workers, newest first."""
    with clean_errors():
        client = remote(url, key)
        if client is not None:
            with client:
                listed = client.list_dynamic_workers(limit=min(limit, 500))
            if as_json:
                _print_json([w.model_dump(mode="json", exclude={"code"}) for w in listed])
            else:
                _table([_remote_row(w) for w in listed])
            return
        with _open(db) as (_, workers):
            found = workers.list(tenant, limit=limit)
        if as_json:
            _print_json([w.to_json(code=False) for w in found])
            return
        _table([(w.name or "", w.language, f"{w.limits.timeout:g}s", f"{w.limits.memory_mb} MiB",
                 _bindings(w), w.created_at.strftime("%Y-%m-%d %H:%M") if w.created_at else "",
                 w.id) for w in found])


def _remote_row(w: WorkerOut) -> tuple[str, ...]:
    parts = (["kv"] if w.config.kv else []) + [f"fetch:{a}" for a in w.config.fetch_allow]
    bindings = ", ".join(parts + (["wasm"] if w.config.allow_wasm else [])) or "none"
    return (w.name or "", w.language, f"{w.limits.timeout:g}s", f"{w.limits.memory_mb} MiB",
            bindings, w.created_at.strftime("%Y-%m-%d %H:%M") if w.created_at else "", w.id)


def _table(rows: list[tuple[str, ...]]) -> None:
    table = Table("name", "language", "timeout", "memory", "bindings")
    # Ids are copied into `workers run`, so they are never cut or wrapped.
    table.add_column("created", no_wrap=True)
    table.add_column("id", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@workers_app.command("show")
def show(
    worker_id: str,
    tenant: TenantOption = DEFAULT_TENANT,
    db: DbOption = None,
    as_json: JsonFlag = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Show one worker: configuration, limits and code."""
    with clean_errors():
        client = remote(url, key)
        if client is not None:
            with client:
                out = client.get_dynamic_worker(worker_id)
            data, code = out.model_dump(mode="json"), out.code or ""
        else:
            with _open(db) as (_, workers):
                w = workers.get(worker_id, tenant=tenant)
            data, code = w.to_json(), w.code
        if as_json:
            _print_json(data)
            return
        table = Table(show_header=False, title=f"worker {data['id']}")
        for name, value in data.items():
            if name == "code":
                continue
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            table.add_row(name, "" if shown is None else str(shown))
        console.print(table)
        print(code)


def _bindings(w: DynamicWorker) -> str:
    parts = (["kv"] if w.spec.kv else []) + [f"fetch:{a}" for a in w.spec.fetch_allow]
    return ", ".join(parts + (["wasm"] if w.spec.allow_wasm else [])) or "none"
