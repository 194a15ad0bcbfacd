"""The media pipeline as a durable workflow (``treadle.media.process``).

    ingest -> encode (one child job per rendition x segment, ``ctx.map``)
           -> concat:<rendition> -> thumbnails -> audio -> hls

Each arrow is a checkpointed step. The encodes are child jobs of the task
``treadle.media.segment``, so every worker of the queue takes segments of one input in
parallel, and the workflow waits for them without a slot. A worker killed mid-transcode
costs the segment it held: finished children stay finished, and the one in flight is
retried when its lease expires (finding its output in the store if it got that far).
The job's budget scales with the input's duration; a segment whose frame count stops
moving for ``stall_seconds`` fails as ``timeout`` regardless (ADR 0016).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.artifacts.blobstore import Blob
from treadle.core.errors import InvalidInput
from treadle.core.job import DEFAULT_TENANT
from treadle.media.probe import MediaInfo
from treadle.media.renditions import Segment, parse_renditions, plan_segments
from treadle.media.sources import MAX_URL_BYTES, check_source
from treadle.media.steps import MediaSteps

if TYPE_CHECKING:
    from treadle.app import JobHandle, Treadle
    from treadle.context import JobContext
    from treadle.workflows import Workflow, WorkflowContext

WORKFLOW = "treadle.media.process"
SEGMENT_TASK = "treadle.media.segment"  # one segment of one rendition: a child job
DEFAULT_BUDGET = 3600.0  # seconds, when the input's duration is not known at submit
SEGMENT_SECONDS = 10.0
STALL_SECONDS = 120.0


def budget_for(duration: float | None, renditions: int) -> float:
    """The job's time budget: generous per second of input and per rendition."""
    if duration is None:
        return DEFAULT_BUDGET
    return round(120.0 + duration * (2.0 + 3.0 * max(1, renditions)), 1)


def check_request(payload: dict[str, Any], *, trusted: bool) -> dict[str, Any]:
    """Validate a pipeline request fully before anything is stored or enqueued."""
    known = {"source", "renditions", "thumbnails", "thumbnail_times", "hls", "audio",
             "segment_seconds", "stall_seconds"}
    extra = set(payload) - known
    if extra:
        # repr: an option's name is the caller's text (a lone surrogate would make this
        # message itself unencodable wherever it is shown).
        names = ", ".join(repr(str(n)) for n in sorted(extra, key=str))
        raise InvalidInput(f"unknown media options: {names[:200]}")
    out: dict[str, Any] = {"source": check_source(payload.get("source"), trusted=trusted)}
    out["renditions"] = [r.name for r in parse_renditions(payload.get("renditions", []))]
    thumbs = payload.get("thumbnails", 0)
    if isinstance(thumbs, bool) or not isinstance(thumbs, int) or not 0 <= thumbs <= 100:
        raise InvalidInput("thumbnails must be an integer from 0 to 100")
    out["thumbnails"] = thumbs
    times = payload.get("thumbnail_times", [])
    if not isinstance(times, list) or len(times) > 100 or any(
            isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 86_400
            for t in times):
        raise InvalidInput("thumbnail_times must be a list of at most 100 times in seconds")
    out["thumbnail_times"] = [float(t) for t in times]
    for flag in ("hls", "audio"):
        value = payload.get(flag, False)
        if not isinstance(value, bool):
            raise InvalidInput(f"{flag} must be true or false")
        out[flag] = value
    if out["hls"] and not out["renditions"]:
        raise InvalidInput("hls packages renditions: ask for at least one")
    for name, default, low, high in (("segment_seconds", SEGMENT_SECONDS, 1.0, 600.0),
                                     ("stall_seconds", STALL_SECONDS, 0.1, 3600.0)):
        value = payload.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high:
            raise InvalidInput(f"{name} must be a number from {low:g} to {high:g}")
        out[name] = float(value)
    if not (out["renditions"] or out["thumbnails"] or out["thumbnail_times"] or out["audio"]):
        raise InvalidInput("nothing to do: ask for renditions, thumbnails or audio")
    return out


def register(app: Treadle, *, max_url_bytes: int = MAX_URL_BYTES) -> Workflow:
    """Register the pipeline on ``app`` (idempotent); returns the workflow.
    ``max_url_bytes`` caps a URL source (streamed to disk as it arrives)."""
    from treadle.workflows import Workflow

    existing = app.tasks.get(WORKFLOW)
    if isinstance(existing, Workflow):
        return existing
    steps = MediaSteps(app, max_url_bytes=max_url_bytes)

    # A segment's budget: generous for the longest segment (600 s of input); a hang is
    # caught sooner by stall detection.
    @app.task(name=SEGMENT_TASK, retries=3, timeout=DEFAULT_BUDGET, pass_context=True)
    def segment(ctx: JobContext, **payload: Any) -> dict[str, Any]:
        return steps.encode_child(ctx, payload)

    @app.workflow(name=WORKFLOW, retries=3, timeout=DEFAULT_BUDGET)
    def process(ctx: WorkflowContext, **payload: Any) -> dict[str, Any]:
        return run(ctx, steps, check_request(payload, trusted=True))

    process.media_steps = steps  # type: ignore[attr-defined]  # tests reach the seam here
    return process


def run(ctx: WorkflowContext, steps: MediaSteps, req: dict[str, Any]) -> dict[str, Any]:
    job = ctx.job
    needs_video = bool(req["renditions"] or req["thumbnails"] or req["thumbnail_times"])
    src = ctx.step("ingest", steps.ingest, job, req["source"], needs_video)
    sha, info = src["sha256"], MediaInfo.from_json(src["info"])

    result: dict[str, Any] = {"input": {"sha256": sha, **info.summary()}, "renditions": {}}
    plan: list[Segment] = plan_segments(info, req["segment_seconds"]) if needs_video else []
    renditions = parse_renditions(req["renditions"])
    work = [(r, seg) for r in renditions for seg in plan]
    encoded = ctx.map("encode", SEGMENT_TASK, [
        # Without the keyframe list (an encode needs none): payloads stay small.
        {"sha256": sha, "info": {**src["info"], "keyframes": []}, "rendition": r.name,
         "segment": seg.to_json(),
         "stall_seconds": req["stall_seconds"]} for r, seg in work]) if work else []
    for rendition in renditions:
        parts = [(done["name"], seg.start) for (r, seg), done in zip(work, encoded, strict=True)
                 if r == rendition]
        joined = ctx.step(f"concat:{rendition.name}", steps.concat, job, rendition, parts)
        result["renditions"][rendition.name] = joined
    if req["thumbnails"] or req["thumbnail_times"]:
        result["thumbnails"] = ctx.step("thumbnails", steps.thumbnails, job, sha, info,
                                        req["thumbnails"], req["thumbnail_times"])
    if req["audio"]:
        result["audio"] = ctx.step("audio", steps.audio, job, sha, info)
    if req["hls"]:
        result["hls"] = ctx.step("hls", steps.hls, job, req["renditions"])[0]
    result["segments"] = len(plan)
    steps.cleanup(job)
    return result


def submit(
    app: Treadle,
    source: dict[str, Any] | str | Path,
    *,
    renditions: list[str] | str = ("360p", "720p"),  # type: ignore[assignment]
    thumbnails: int = 4,
    hls: bool = False,
    audio: bool = False,
    tenant: str = DEFAULT_TENANT,
    trusted: bool = True,
    **options: Any,
) -> JobHandle:
    """Start a pipeline: ``source`` is a local file (probed here, then stored), or a
    source dict (``{"artifact": id}``, ``{"url": ...}``). Returns the job handle."""
    from treadle.media.probe import probe

    wf = register(app)
    duration: float | None = None
    stored: tuple[Blob, MediaInfo] | None = None
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            is_file = path.is_file()
        except (OSError, ValueError):  # a name too long to look up, or with NUL
            is_file = False
        if not is_file:
            raise InvalidInput(f"no such file: {str(path)[:200]!r}")
        info = probe(path)  # refuse bad input before anything is stored
        duration = info.duration
        # Held (safe from the collector) until it is recorded as the job's source below.
        blob = app.artifacts.store_file(path)
        source = {"sha256": blob.sha256, "name": path.name}
        stored = (blob, info)
    payload = check_request({"source": source, "renditions": list(renditions)
                             if isinstance(renditions, tuple) else renditions,
                             "thumbnails": thumbnails, "hls": hls, "audio": audio, **options},
                            trusted=trusted)
    if duration is None and "artifact" in payload["source"]:
        art = app.artifacts.get(payload["source"]["artifact"], tenant=tenant)
        known = art.meta.get("duration")
        duration = float(known) if isinstance(known, int | float) else None
    job = wf.new_job(payload, tenant=tenant)
    job = dataclasses.replace(job, timeout=budget_for(duration, len(payload["renditions"])))
    handle = app.enqueue([job])[0]
    if stored is not None:  # referenced from now on; ingest records the same row again
        app.artifacts.put_blob(handle.id, f"source/{payload['source']['name']}", stored[0],
                               tenant=tenant, meta=stored[1].summary())
    return handle
