"""Artifacts in the UI: the job page's list with previews, and session-scoped downloads.

``/ui/artifacts/{id}`` serves a logged-in user's own tenant's artifact (admins: any), as
the API does for keys, streamed with ranges (an HTML5 ``<video>`` seeks with them).
``?inline=1`` shows images, video and audio in the page; everything else is an
attachment, served under a sandboxing CSP either way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from treadle.artifacts.api import stream_response
from treadle.artifacts.model import Artifact, ArtifactNotFound, human_size
from treadle.core.errors import TreadleError
from treadle.ui.web import UIContext


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/ui/artifacts/{artifact_id}", include_in_schema=False)
    async def artifact(request: Request, artifact_id: int) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        try:
            if not 1 <= artifact_id < 2**63:
                raise ArtifactNotFound(f"artifact {artifact_id} not found")
            art = await run_in_threadpool(ctx.treadle.artifacts.get, artifact_id,
                                          tenant=user.tenant_filter)
        except ArtifactNotFound:
            return ctx.error(request, user, 404, f"No artifact {artifact_id}.")
        # Always streamed through here (also on S3): the page's CSP allows media from this
        # origin only, and a browser's <video> seeks with ranges, which are honoured.
        inline = request.query_params.get("inline") == "1"
        return await run_in_threadpool(stream_response, ctx.treadle, art,
                                       request.headers.get("range"), inline)


def job_artifacts(ctx: UIContext, job_id: int, tenant: str | None) -> list[dict[str, Any]]:
    """What the job page shows of each artifact; an unconfigured store shows none."""
    try:
        arts = ctx.treadle.job_artifacts(job_id, tenant=tenant)
    except TreadleError:
        return []
    return [_view(a) for a in arts]


def _view(a: Artifact) -> dict[str, Any]:
    if a.name.startswith("work/"):
        preview = None  # a media pipeline's intermediate segments: listed, not previewed
    elif a.content_type.startswith("image/") and a.content_type != "image/svg+xml":
        preview = "image"
    elif a.content_type in ("video/mp4", "video/webm"):
        preview = "video"
    elif a.content_type.startswith("audio/"):
        preview = "audio"
    else:
        preview = None
    duration = a.meta.get("duration")
    return {
        "id": a.id, "name": a.name, "step": a.step, "size": human_size(a.size),
        "content_type": a.content_type, "preview": preview,
        "duration": f"{float(duration):.1f} s" if isinstance(duration, int | float) else None,
        "dims": (f"{a.meta['width']}x{a.meta['height']}"
                 if isinstance(a.meta.get("width"), int) and isinstance(a.meta.get("height"), int)
                 else None),
        "url": f"/ui/artifacts/{a.id}",
    }

