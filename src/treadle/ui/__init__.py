"""The web control plane (issue 5): server-rendered pages with HTMX, served by the API app.

Mount it on the API's FastAPI app::

    from treadle.ui import mount
    mount(fastapi_app, treadle)               # session secret from TREADLE_UI_SECRET

Pages: ``/login``, ``/`` (dashboard), ``/jobs``, ``/jobs/{id}``, ``/workers/new``,
``/queues``, ``/metrics`` (for browsers; Prometheus clients still reach the API's text
endpoint there). Fragments, JSON for charts and static assets live under ``/ui/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from treadle.ui import pages_auth, pages_jobs, pages_ops, pages_workers
from treadle.ui.session import Signer
from treadle.ui.web import HERE, STATIC_PREFIX, UIContext, make_templates

if TYPE_CHECKING:
    from treadle.app import Treadle

__all__ = ["mount", "ui_router"]


def ui_router(treadle: Treadle, *, secret: str | bytes | None = None) -> APIRouter:
    """The UI's routes (without static files; ``mount`` adds those)."""
    ctx = UIContext(treadle, Signer.from_env(secret), make_templates())
    router = APIRouter()
    pages_auth.register(router, ctx)
    pages_ops.register(router, ctx)
    pages_jobs.register(router, ctx)
    pages_workers.register(router, ctx)
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
