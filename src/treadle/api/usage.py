"""``GET /v1/usage``: what attempts cost, summed per tenant or queue (ADR 0022).

A key without the admin scope sees its own tenant only, whatever it asks; an admin key
sees every tenant (``tenant=`` narrows).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.auth import Principal, require
from treadle.api.models import NAME_PATTERN
from treadle.api.problems import Problem
from treadle.store.usage import UsageReader, UsageRow

router = APIRouter(prefix="/v1", tags=["usage"])
Reader = Annotated[Principal, Depends(require("read"))]
DEFAULT_SPAN = timedelta(hours=24)


class UsageGroupOut(BaseModel):
    group: str
    attempts: int
    succeeded: int
    failed: int
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int | None
    result_bytes: int
    log_bytes: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


class UsageOut(BaseModel):
    """Attempts that ended in ``[from, to)``, summed per group, and their total."""

    model_config = ConfigDict(populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    group_by: Literal["tenant", "queue"]
    tenant: str | None
    groups: list[UsageGroupOut]
    total: UsageGroupOut


def total_of(rows: list[UsageRow]) -> UsageRow:
    peaks = [r.peak_memory_bytes for r in rows if r.peak_memory_bytes is not None]
    return UsageRow(
        group="total", attempts=sum(r.attempts for r in rows),
        succeeded=sum(r.succeeded for r in rows), failed=sum(r.failed for r in rows),
        wall_seconds=sum(r.wall_seconds for r in rows),
        cpu_seconds=sum(r.cpu_seconds for r in rows),
        peak_memory_bytes=max(peaks) if peaks else None,
        result_bytes=sum(r.result_bytes for r in rows), log_bytes=sum(r.log_bytes for r in rows),
        tokens_in=sum(r.tokens_in for r in rows), tokens_out=sum(r.tokens_out for r in rows),
        cost_usd=sum(r.cost_usd for r in rows),
    )


@router.get("/usage", response_model=UsageOut, summary="Usage per tenant or queue",
            responses={422: {"description": "Bad range or grouping"}})
async def get_usage(
    request: Request,
    principal: Reader,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    group_by: Literal["tenant", "queue"] = "tenant",
    tenant: Annotated[str | None, Query(min_length=1, max_length=200,
                                        pattern=NAME_PATTERN)] = None,
) -> JSONResponse:
    now = datetime.now(UTC)
    for name, value in (("from", from_), ("to", to)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, f"{name} must include a timezone")
    try:
        end = to.astimezone(UTC) if to is not None else now
        start = from_.astimezone(UTC) if from_ is not None else end - DEFAULT_SPAN
    except (OverflowError, ValueError):  # year 1 with a positive offset, and the like
        raise Problem(422, "from and to must be within years 1 to 9999 in UTC") from None
    if start >= end:
        raise Problem(422, "from must be before to")
    # Tenant-scoped unless the key is an admin's: another tenant's figures are never shown.
    scope = tenant if principal.allows("admin") else principal.tenant
    reader = UsageReader(request.app.state.treadle.store)
    rows = await run_in_threadpool(reader.summary, start=start, end=end, group_by=group_by,
                                   tenant=scope)
    return JSONResponse({
        "from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
        "tenant": scope, "groups": [r.to_json() for r in rows],
        "total": total_of(rows).to_json(),
    })
