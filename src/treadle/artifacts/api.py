"""``GET /v1/jobs/{id}/artifacts`` and ``GET /v1/artifacts/{id}`` (download).

Tenant-scoped like every route: another tenant's job or artifact is a 404, the same as
one that does not exist. On S3 a download is a short-lived presigned redirect (the bytes
do not pass through the API); on the local store they are streamed, with single ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel

from treadle.api.auth import Principal, require
from treadle.api.problems import Problem
from treadle.artifacts.model import Artifact, ArtifactNotFound
from treadle.artifacts.names import download_name
from treadle.artifacts.ranges import Unsatisfiable, parse_range

if TYPE_CHECKING:
    from treadle.app import Treadle

router = APIRouter(prefix="/v1", tags=["artifacts"])
Reader = Annotated[Principal, Depends(require("read"))]
PRESIGN_SECONDS = 300
# Inline only what a browser renders without running it; anything else is an attachment.
_INLINE_PREFIXES = ("image/png", "image/jpeg", "image/webp", "image/gif", "video/", "audio/")


class ArtifactOut(BaseModel):
    id: int
    job_id: int
    step: str | None
    name: str
    key: str
    sha256: str
    size: int
    content_type: str
    meta: dict[str, Any]
    created_at: str
    url: str


class ArtifactList(BaseModel):
    artifacts: list[ArtifactOut]


def _treadle(request: Request) -> Treadle:
    return request.app.state.treadle  # type: ignore[no-any-return]


def _out(a: Artifact) -> dict[str, Any]:
    return {**a.to_json(), "url": f"/v1/artifacts/{a.id}"}


def _in_range(value: int, what: str) -> int:
    if not 1 <= value <= 2**63 - 1:
        raise Problem(404, f"{what} {value} not found", slug=f"{what}-not-found")
    return value


@router.get("/jobs/{job_id}/artifacts", response_model=ArtifactList,
            summary="The files a job produced")
def job_artifacts(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle = _treadle(request)
    job = treadle.get_job(_in_range(job_id, "job"), tenant=principal.tenant)  # 404 if not theirs
    arts = treadle.job_artifacts(job.id, tenant=principal.tenant)
    return JSONResponse({"artifacts": [_out(a) for a in arts]})


@router.get(
    "/artifacts/{artifact_id}",
    summary="Download an artifact (S3: a presigned redirect)",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                   "format": "binary"}}},
              "description": "The bytes"},
        206: {"description": "One range of the bytes (Range: bytes=...)"},
        307: {"description": "Redirect to a short-lived presigned URL (S3)"},
        416: {"description": "Range not satisfiable"},
    },
)
async def download(
    request: Request,
    artifact_id: int,
    principal: Reader,
    range_header: Annotated[str | None, Header(alias="Range", max_length=100)] = None,
    inline: Annotated[bool, Query(description="Show in the browser if it is safe")] = False,
) -> Response:
    treadle = _treadle(request)
    try:
        art = await run_in_threadpool(treadle.artifacts.get, _in_range(artifact_id, "artifact"),
                                      tenant=principal.tenant)
    except ArtifactNotFound:
        raise Problem(404, f"artifact {artifact_id} not found", slug="artifact-not-found") from None
    url = await run_in_threadpool(treadle.artifacts.presigned_url, art, expires=PRESIGN_SECONDS)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    return await run_in_threadpool(stream_response, treadle, art, range_header, inline)


def stream_response(treadle: Treadle, art: Artifact, range_header: str | None,
                    inline: bool) -> Response:
    """The artifact's bytes (or one range), streamed; shared with the UI's downloads."""
    try:
        span = parse_range(range_header, art.size)
    except Unsatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{art.size}"})
    start, end = span if span is not None else (0, art.size)
    try:
        body: Iterator[bytes] = treadle.artifacts.open(art, start, end)
    except ArtifactNotFound as exc:
        raise Problem(404, exc.message, slug="artifact-not-found") from None
    safe_inline = inline and art.content_type.startswith(_INLINE_PREFIXES)
    disposition = "inline" if safe_inline else "attachment"
    headers = {
        "Content-Length": str(end - start),
        "Accept-Ranges": "bytes",
        "ETag": f'"{art.sha256}"',
        "Content-Disposition":
            f"{disposition}; filename*=UTF-8''{quote(download_name(art.name), safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=3600",
    }
    status = 200
    if span is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{art.size}"
    return StreamingResponse(body, status_code=status, media_type=art.content_type,
                             headers=headers)
