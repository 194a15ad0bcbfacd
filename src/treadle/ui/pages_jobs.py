"""``/jobs`` (filter, page, submit, bulk actions) and ``/jobs/{id}`` (record, timeline, logs)."""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from treadle.core.errors import JobNotFound, TreadleError
from treadle.core.job import Job, JobFilter, JobKind
from treadle.core.lifecycle import JobStatus
from treadle.ui import timeline
from treadle.ui.auth import can_write_jobs
from treadle.ui.pages_artifacts import job_artifacts
from treadle.ui.session import SessionUser
from treadle.ui.web import UIContext, as_id, form_str, is_id, query_str

PAGE_SIZE = 50
MAX_BULK = 200
SINCE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
         "7d": timedelta(days=7)}


@dataclass(frozen=True)
class Filters:
    status: str = ""
    queue: str = ""
    task: str = ""
    tenant: str = ""
    since: str = ""
    before_id: int | None = None

    @classmethod
    def parse(cls, request: Request, user: SessionUser) -> Filters:
        status = query_str(request, "status")
        before = query_str(request, "before_id")
        return cls(
            status=status if status in {s.value for s in JobStatus} else "",
            queue=query_str(request, "queue")[:201],  # 201: too long to be a name
            task=query_str(request, "task")[:201],
            # A tenant key is always scoped to its own tenant, whatever the URL says.
            tenant=query_str(request, "tenant")[:201] if user.is_admin else "",
            since=query_str(request, "since") if query_str(request, "since") in SINCE else "",
            before_id=as_id(before),
        )

    @property
    def matches_nothing(self) -> bool:
        """A queue, task or tenant that no job can have (NUL, control characters, over 200
        characters): no query at all. PostgreSQL would refuse the NUL where SQLite answers."""
        return any(v and (len(v) > 200 or not v.isprintable())
                   for v in (self.queue, self.task, self.tenant))

    def list_jobs(self, ctx: UIContext, user: SessionUser, limit: int = PAGE_SIZE) -> list[Job]:
        return [] if self.matches_nothing else ctx.store.list_jobs(self.store_filter(user, limit))

    def store_filter(self, user: SessionUser, limit: int = PAGE_SIZE) -> JobFilter:
        since = SINCE.get(self.since)
        return JobFilter(
            tenant=user.tenant_filter if not self.tenant else self.tenant,
            statuses=(JobStatus(self.status),) if self.status else (),
            queue=self.queue or None,
            task=self.task or None,
            created_after=datetime.now(UTC) - since if since else None,
            before_id=self.before_id,
            limit=limit,
        )

    def query(self, **override: Any) -> str:
        values = {"status": self.status, "queue": self.queue, "task": self.task,
                  "tenant": self.tenant, "since": self.since, "before_id": self.before_id}
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/jobs", response_class=HTMLResponse, include_in_schema=False)
    async def jobs_page(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        return await run_in_threadpool(
            _render_list, request, ctx, user, Filters.parse(request, user))

    @router.get("/ui/jobs/status", response_class=HTMLResponse, include_in_schema=False)
    async def jobs_status(request: Request) -> Response:
        """The cheap poll behind /jobs: fresh status cells only, swapped out-of-band by id,
        so rows (and the user's ticked checkboxes) stay where they are."""
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        flt = Filters.parse(request, user)
        jobs = await run_in_threadpool(flt.list_jobs, ctx, user)
        newest = as_id(query_str(request, "newest"))
        newer = sum(1 for j in jobs if newest is not None and j.id > newest)
        return ctx.render(request, "_jobs_status.html", {"jobs": jobs, "newer": newer,
                                                         "filters": flt}, user=user)

    @router.post("/jobs", response_class=HTMLResponse, include_in_schema=False)
    async def submit(request: Request) -> Response:
        posted = await ctx.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if not can_write_jobs(user):
            return ctx.error(request, user, 403, "Your API key may not submit jobs.")
        values = {k: form_str(form, k) for k in ("task", "payload", "queue", "delay")}
        try:
            job = await run_in_threadpool(_submit, ctx, user, values)
        except (TreadleError, ValueError) as exc:
            msg = getattr(exc, "message", None) or str(exc)
            return await run_in_threadpool(
                lambda: _render_list(request, ctx, user, Filters(), submit_values=values,
                                     submit_error=msg, status_code=422))
        return ctx.redirect(request, f"/jobs/{job.id}", flash=("ok", f"Job {job.id} submitted."))

    @router.post("/jobs/bulk", include_in_schema=False)
    async def bulk(request: Request) -> Response:
        posted = await ctx.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if not can_write_jobs(user):
            return ctx.error(request, user, 403, "Your API key may not change jobs.")
        action = form_str(form, "action")
        ids = [i for v in form.getlist("ids") if isinstance(v, str) and (i := as_id(v))]
        back = "/jobs" + (f"?{form_str(form, 'back')}" if form_str(form, "back") else "")
        if action not in {"retry", "cancel"} or not ids:
            return ctx.redirect(request, back, flash=("warn", "Select jobs and an action."))
        done, refused = await run_in_threadpool(_apply, ctx, user, action, ids[:MAX_BULK])
        text = f"{action.capitalize()}: {done} job(s) done"
        text += f"; {len(refused)} not possible (#{', #'.join(map(str, refused[:10]))})" \
            if refused else "."
        return ctx.redirect(request, back, flash=("warn" if refused else "ok", text))

    @router.get("/jobs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    async def job_page(request: Request, job_id: int) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        data = await run_in_threadpool(_detail, ctx, user, job_id) if is_id(job_id) else None
        if data is None:
            return ctx.error(request, user, 404, f"No job {job_id} (or not in your tenant).")
        return ctx.render(request, "job.html", data, user=user)

    @router.get("/ui/jobs/{job_id}/live", response_class=HTMLResponse, include_in_schema=False)
    async def job_live(request: Request, job_id: int) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        data = await run_in_threadpool(_detail, ctx, user, job_id) if is_id(job_id) else None
        if data is None:
            return ctx.error(request, user, 404, "gone")
        return ctx.render(request, "_job_live.html", data, user=user)

    @router.post("/jobs/{job_id}/{action}", include_in_schema=False)
    async def job_action(request: Request, job_id: int, action: str) -> Response:
        posted = await ctx.posted(request)
        if isinstance(posted, Response):
            return posted
        user, _ = posted
        if action not in _ACTIONS:
            return ctx.error(request, user, 404, "No such action.")
        if not can_write_jobs(user):
            return ctx.error(request, user, 403, "Your API key may not change jobs.")
        done, _ = await run_in_threadpool(_apply, ctx, user, action, [job_id])
        flash = ("ok", f"Job {job_id}: {action} requested.") if done else (
            "warn", f"Job {job_id} cannot be {_ACTIONS[action]} in its current state.")
        return ctx.redirect(request, f"/jobs/{job_id}", flash=flash)


def _submit(ctx: UIContext, user: SessionUser, values: dict[str, str]) -> Job:
    try:
        payload = json.loads(values["payload"] or "{}")
    except RecursionError:  # not a ValueError: it would escape the form's error path
        raise ValueError("the payload is nested too deeply (at most 100 levels)") from None
    if not isinstance(payload, dict):
        raise ValueError("the payload must be a JSON object, e.g. {\"x\": 1}")
    opts: dict[str, Any] = {"tenant": user.tenant}
    if values["queue"]:
        opts["queue"] = values["queue"]
    if values["delay"]:
        opts["delay"] = _delay(values["delay"])
    return ctx.treadle.defer(values["task"], payload, **opts).job


MAX_DELAY = 366 * 24 * 3600  # as the API's ``delay`` (SubmitJob)


def _delay(text: str) -> float:
    """Seconds from 0 to a year: beyond, ``defer`` overflows the calendar (or a timedelta)."""
    try:
        delay = float(text)
    except ValueError:
        delay = math.nan
    if not 0 <= delay <= MAX_DELAY:  # NaN too
        raise ValueError(f"the delay must be a number of seconds from 0 to {MAX_DELAY}")
    return delay


# Per-job actions (past tense for messages); release and discard leave quarantine (ADR 0015).
_ACTIONS = {"retry": "retried", "cancel": "cancelled", "release": "released",
            "discard": "discarded"}


def _apply(ctx: UIContext, user: SessionUser, action: str, ids: list[int]) -> tuple[int, list[int]]:
    """Apply a job action to each job as the user's tenant; count what the store refused."""
    act = {"retry": ctx.treadle.retry, "cancel": ctx.treadle.cancel,
           "release": ctx.treadle.release, "discard": ctx.treadle.discard}[action]
    done, refused = 0, []
    for job_id in ids:
        try:
            before = ctx.store.get_job(job_id, tenant=user.tenant_filter)
            after = act(job_id, tenant=user.tenant_filter)
        except TreadleError:
            refused.append(job_id)
            continue
        # Status alone is not enough: a retried job can run and fail again before the
        # store reads it back (failed -> failed), so the attempt counts are compared too.
        changed = _state(after) != _state(before)
        if changed:
            done += 1
        else:
            refused.append(job_id)
    return done, refused


def _state(job: Job) -> tuple[object, ...]:
    return job.status, job.cancel_requested, job.attempt, job.max_attempts


def _detail(ctx: UIContext, user: SessionUser, job_id: int) -> dict[str, Any] | None:
    try:
        job = ctx.store.get_job(job_id, tenant=user.tenant_filter)
    except JobNotFound:
        return None
    events = ctx.store.events(job_id)
    logs = ctx.store.logs(job_id)
    return {
        "job": job,
        "timeline": timeline.build(job, events, logs),
        "event_count": len(events),
        "log_count": len(logs),
        "can_write": can_write_jobs(user),
        "can_retry": job.status in {JobStatus.FAILED, JobStatus.CANCELLED},
        "can_cancel": not job.is_finished and not job.cancel_requested,
        "traceback": _traceback(job),
        "artifacts": job_artifacts(ctx, job_id, user.tenant_filter),
        "steps": _steps(ctx, job),
        "waiting_on": ctx.treadle.why_not_running(job),
    }


MAX_CHILDREN_SHOWN = 50


def _steps(ctx: UIContext, job: Job) -> list[dict[str, Any]] | None:
    """A workflow's steps, each with the child jobs it created (None for other kinds)."""
    from treadle.workflows.plugin import Workflows

    plugin = ctx.treadle.find_plugin(Workflows)
    if job.kind is not JobKind.WORKFLOW or plugin is None:
        return None
    out = []
    for step in plugin.service.steps(job.id):
        children = []
        for child_id in step.children[:MAX_CHILDREN_SHOWN]:
            with contextlib.suppress(JobNotFound):
                children.append(ctx.store.get_job(child_id))
        out.append({"step": step, "children": children,
                    "more": max(0, len(step.children) - MAX_CHILDREN_SHOWN)})
    return out


def _traceback(job: Job) -> str | None:
    detail = job.error.detail if job.error else None
    if isinstance(detail, dict):
        tb = detail.get("traceback")
        if isinstance(tb, str):
            return tb
        if isinstance(tb, list):
            return "".join(str(x) for x in tb)
    return None


def _render_list(
    request: Request, ctx: UIContext, user: SessionUser, flt: Filters, *,
    submit_values: dict[str, str] | None = None, submit_error: str | None = None,
    status_code: int = 200,
) -> Response:
    jobs = flt.list_jobs(ctx, user, limit=PAGE_SIZE + 1)
    has_more = len(jobs) > PAGE_SIZE
    jobs = jobs[:PAGE_SIZE]
    return ctx.render(
        request, "jobs.html",
        {
            "jobs": jobs,
            "filters": flt,
            "statuses": [s.value for s in JobStatus],
            "since_options": list(SINCE),
            "queues": sorted({q.name for q in ctx.store.queues()}),
            "tasks": sorted(ctx.treadle.tasks),
            "older": flt.query(before_id=jobs[-1].id) if has_more and jobs else None,
            "newest_query": flt.query(before_id=None),
            "status_query": flt.query(newest=jobs[0].id if jobs and not flt.before_id else ""),
            "can_write": can_write_jobs(user),
            "submit_values": submit_values or {"task": "", "payload": "{}", "queue": "",
                                               "delay": ""},
            "submit_error": submit_error,
        },
        user=user, status_code=status_code,
    )
