"""``POST /v1/media``: start a media pipeline from an artifact of the caller's tenant or a
URL (checked against the egress policy now, and again when fetched)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.auth import Principal, require
from treadle.api.models import JobOut
from treadle.api.problems import Problem
from treadle.artifacts.model import ArtifactNotFound

if TYPE_CHECKING:
    from treadle.app import Treadle

router = APIRouter(prefix="/v1", tags=["media"])
Submitter = Annotated[Principal, Depends(require("submit"))]


class MediaSource(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not dropped

    artifact: int | None = Field(None, ge=1, le=2**63 - 1,
                                 description="An artifact id of your tenant")
    url: str | None = Field(None, max_length=2048, description="An http(s) URL")


class MediaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: MediaSource
    renditions: list[str] = Field(default_factory=lambda: ["360p", "720p"], max_length=6)
    thumbnails: int = Field(4, ge=0, le=100)
    thumbnail_times: list[float] = Field(default_factory=list, max_length=100,
                                         description="Exact times (seconds) for thumbnails")
    hls: bool = False
    audio: bool = False


@router.post("/media", status_code=202, response_model=JobOut,
             summary="Start a media pipeline (a workflow job)")
def start(request: Request, body: MediaRequest, principal: Submitter) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    from treadle.egress import EgressError
    from treadle.media.pipeline import submit

    src = body.source.model_dump(exclude_none=True)
    if len(src) != 1:
        raise Problem(422, "source needs exactly one of artifact or url")
    if "url" in src:
        try:
            treadle.egress.check_static(src["url"])
        except EgressError as exc:
            raise Problem(422, f"source URL: {exc}", error_class="invalid_input") from None
    try:
        handle = submit(treadle, src, renditions=body.renditions, thumbnails=body.thumbnails,
                        hls=body.hls, audio=body.audio, tenant=principal.tenant,
                        thumbnail_times=body.thumbnail_times,
                        trusted=False)
    except ArtifactNotFound:
        raise Problem(404, "source artifact not found", slug="artifact-not-found") from None
    job: Any = handle.job
    return JSONResponse(job.to_json(), status_code=202,
                        headers={"Location": f"/v1/jobs/{job.id}"})

