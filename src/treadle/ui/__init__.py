"""The web control plane (ADR 0501): server-rendered pages with HTMX, served by the API app.

Mount it on the API's FastAPI app::

    from treadle.ui import mount
    mount(fastapi_app, treadle)               # session secret from TREADLE_UI_SECRET

Pages: ``/login``, ``/`` (dashboard), ``/jobs``, ``/jobs/{id}``, ``/queues``, ``/metrics``
(for browsers; Prometheus clients still reach the API's text
endpoint there), plus the pages of the app's job-kind plug-ins (``/dynamic-workers/new`` for
dynamic workers). Fragments, JSON for charts and static assets live under ``/ui/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from treadle.streams import ui as streams_ui
from treadle.ui import pages_artifacts, pages_auth, pages_jobs, pages_ops
from treadle.ui.session import Signer
from treadle.ui.web import CORE_NAV, HERE, STATIC_PREFIX, UIContext, make_templates

if TYPE_CHECKING:
    from treadle.app import Treadle

__all__ = ["mount", "ui_router"]


def ui_router(treadle: Treadle, *, secret: str | bytes | None = None) -> APIRouter:
    """The UI's routes (without static files; ``mount`` adds those)."""
    # Each job-kind plug-in the app uses brings its pages, templates and menu entries.
    pages = [p for p in (plugin.ui_pages(treadle) for plugin in treadle.plugins) if p]
    templates = make_templates([p.templates for p in pages if p.templates is not None])
    nav = [*CORE_NAV, *(entry for p in pages for entry in p.nav)]
    ctx = UIContext(treadle, Signer.from_env(secret), templates, nav=nav)
    ctx.panels = [p.dashboard for p in pages if p.dashboard is not None]
    router = APIRouter()
    pages_auth.register(router, ctx)
    pages_ops.register(router, ctx)
    pages_jobs.register(router, ctx)
    pages_artifacts.register(router, ctx)
    streams_ui.register(router, ctx)  # the job page's live stream (SSE)
    for p in pages:
        p.register(router, ctx)
    return router


def mount(app: FastAPI, treadle: Treadle, *, secret: str | bytes | None = None) -> None:
    """Add the UI to ``app``. Call it once, before or after the API routes.

    The UI's routes go to the front of the routing table. They share no path with the API
    except ``/metrics``, where the UI route matches only requests that accept ``text/html``;
    everything else (Prometheus) falls through to the API's endpoint, whatever the order in
    which the two were added.
    """
    router = ui_router(treadle, secret=secret)
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
    app.mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="treadle-ui-static")
