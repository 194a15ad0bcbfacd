"""The steps of a media pipeline: each one a checkpointed workflow step (``pipeline.py``).

Every step reads its inputs from the artifact store and writes its outputs there before
it returns, so a step that was cut off (worker killed) just runs again. Segment outputs
are named by a key of (input sha256, rendition parameters, segment bounds): a step that
finds its output already stored, by this job or another of the tenant's, skips the encode.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.artifacts.blobstore import Blob, check_sha256
from treadle.artifacts.model import ArtifactNotFound
from treadle.artifacts.service import ArtifactService
from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import Job
from treadle.media import audio as audio_mod
from treadle.media import encode, hls, stills
from treadle.media.probe import MediaInfo, probe
from treadle.media.progress import FrameMeter
from treadle.media.renditions import Rendition, Segment, output_key, parse_renditions
from treadle.media.sources import MAX_URL_BYTES, fetch_url, local_copy

if TYPE_CHECKING:
    from treadle.app import Treadle
    from treadle.context import JobContext


class MediaSteps:
    """The step functions, bound to an app (its artifacts and egress policy)."""

    # Test seam: called before each frame is counted (a test makes it hang). None else.
    frame_hook: Callable[[int], None] | None = None

    def __init__(self, app: Treadle, *, max_url_bytes: int = MAX_URL_BYTES) -> None:
        if not 1 <= max_url_bytes <= 1 << 40:
            raise ConfigurationError("max_url_bytes must be from 1 byte to 1 TiB")
        self.app = app
        self.max_url_bytes = max_url_bytes
        # Scratch space of this process's steps: job ids repeat across databases, so the
        # folder is this object's own (a crash leaves it to the system's temp cleanup).
        self.root = Path(tempfile.gettempdir()) / f"treadle-media-{uuid.uuid4().hex[:12]}"

    def workdir(self, job: Job) -> Path:
        return self.root / f"job-{job.id}"

    @property
    def svc(self) -> ArtifactService:
        return self.app.artifacts

    # -- ingest ----------------------------------------------------------------

    def ingest(self, job: Job, source: dict[str, Any], needs_video: bool) -> dict[str, Any]:
        """Bring the input in, probe it, and only then record it as ``source/<name>``:
        input that cannot be processed leaves nothing behind."""
        work = self.workdir(job)
        work.mkdir(parents=True, exist_ok=True)
        if "url" in source:
            path = fetch_url(source["url"], work, self.app.egress,
                             max_bytes=self.max_url_bytes)
            try:
                info = self._probe(path, needs_video)
                name = "source/" + _url_name(source["url"])
                art = self.svc.put(job.id, name, path, tenant=job.tenant,
                                   meta=info.summary())
            finally:
                path.unlink(missing_ok=True)
            return {"sha256": art.sha256, "size": art.size, "info": info.to_json()}
        if "artifact" in source:
            given = self.svc.get(source["artifact"], tenant=job.tenant)
            blob, name = Blob(given.sha256, given.size), given.name.rsplit("/", 1)[-1]
        else:
            blob = Blob(source["sha256"], self.svc.backend.size(source["sha256"]))
            name = source["name"]
        info = self._probe(local_copy(self.svc, blob.sha256, work), needs_video)
        if self.svc.put_blob(job.id, f"source/{name}", blob, tenant=job.tenant,
                             meta=info.summary()) is None:
            raise InvalidInput("the input is no longer in the artifact store")
        return {"sha256": blob.sha256, "size": blob.size, "info": info.to_json()}

    @staticmethod
    def _probe(path: Path, needs_video: bool) -> MediaInfo:
        info = probe(path)
        if needs_video and not info.has_video:
            raise InvalidInput("not processable media: renditions and thumbnails need a "
                               "video stream, the input has none",
                               detail={"probe": "no video stream"})
        return info

    # -- renditions ------------------------------------------------------------

    def encode_child(self, ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        """The ``treadle.media.segment`` task: its payload comes from the workflow only
        (trusted), and is checked as far as a mistake could reach."""
        try:
            info = MediaInfo.from_json(payload["info"])
            (rendition,) = parse_renditions([payload["rendition"]])
            seg = Segment(**payload["segment"])
            sha256, stall = check_sha256(payload["sha256"]), float(payload["stall_seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a media segment payload: {exc}") from None
        # Per attempt: an abandoned attempt's thread (stuck, then released) must not
        # remove or touch the files a later attempt of the same job is using.
        work = self.root / f"segment-{ctx.job.id}-{ctx.job.attempt}"
        try:
            return self.encode(ctx, sha256, info, rendition, seg, stall, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def encode(self, ctx: JobContext, sha256: str, info: MediaInfo, rendition: Rendition,
               seg: Segment, stall_seconds: float, work: Path) -> dict[str, Any]:
        job = ctx.job
        key = output_key(sha256, "segment", {**rendition.params(), "start": seg.start,
                                             "end": seg.end})
        name = f"work/{key}.mp4"
        found = self.svc.reuse(job.id, name, tenant=job.tenant)
        if found is not None:
            return {"name": name, "frames": found.meta.get("frames", 0), "reused": True}
        work.mkdir(parents=True, exist_ok=True)
        out = work / f"{key}.part.mp4"
        total = max(1, round((seg.end - seg.start) * (info.fps or 25)))
        meter = FrameMeter(ctx, f"{rendition.name} segment {seg.index}", total,
                           self.frame_hook)
        # Fetched before the watch: a long download from S3 counts no frames, and its own
        # client times out a connection that stops.
        src = local_copy(self.svc, sha256, work)
        try:
            # The worker fails this segment as ``timeout`` if no frame is counted for
            # ``stall_seconds``, even if FFmpeg never returns (ADR 0016).
            with ctx.watch_progress(stall_seconds):
                frames = encode.encode_segment(src, info, seg, rendition, out, meter.advance)
            meter.finish()
            self.svc.put(job.id, name, out, tenant=job.tenant, content_type="video/mp4",
                         meta={"frames": frames, "rendition": rendition.name,
                               "segment": seg.index})
        finally:
            out.unlink(missing_ok=True)
        return {"name": name, "frames": frames, "reused": False}

    def concat(self, job: Job, rendition: Rendition, parts: list[tuple[str, float]]
               ) -> dict[str, Any]:
        work = self.workdir(job)
        work.mkdir(parents=True, exist_ok=True)
        files = []
        for name, start in parts:
            # Made by a child job: recorded for this job too (the resume and reuse cache
            # stays with the pipeline's job when retention takes the children).
            art = self.svc.reuse(job.id, name, tenant=job.tenant)
            if art is None:
                raise ArtifactNotFound(f"segment {name} is missing from the artifact store")
            files.append((local_copy(self.svc, art.sha256, work), start))
        out = work / f"{rendition.name}.mp4"
        try:
            encode.concat(files, out)
            info = probe(out)
            art = self.svc.put(job.id, f"renditions/{rendition.name}.mp4", out,
                               tenant=job.tenant, content_type="video/mp4",
                               meta=info.summary())
        finally:
            out.unlink(missing_ok=True)
        return {"name": art.name, "id": art.id, "info": info.summary()}

    # -- the rest --------------------------------------------------------------

    def thumbnails(self, job: Job, sha256: str, info: MediaInfo, count: int,
                   times: list[float]) -> list[str]:
        """``count`` evenly spaced (keyframes only), then the frames at ``times`` exactly."""
        work = self.workdir(job)
        work.mkdir(parents=True, exist_ok=True)
        src = local_copy(self.svc, sha256, work)
        names = []
        wanted = [(at, False) for at in (stills.even_times(info, count) if count else [])]
        wanted += [(min(at, info.duration), True) for at in times]
        for i, (at, exact) in enumerate(wanted):
            out = work / f"thumb_{i:02d}.jpg"
            try:
                stills.thumbnail(src, info, at, out, exact=exact)
                name = f"thumbnails/thumb_{i:02d}.jpg"
                self.svc.put(job.id, name, out, tenant=job.tenant, content_type="image/jpeg",
                             meta={"at": at})
            finally:
                out.unlink(missing_ok=True)
            names.append(name)
        return names

    def audio(self, job: Job, sha256: str, info: MediaInfo) -> str:
        work = self.workdir(job)
        work.mkdir(parents=True, exist_ok=True)
        out = work / "audio.m4a"
        try:
            audio_mod.extract_audio(local_copy(self.svc, sha256, work), info, out)
            self.svc.put(job.id, "audio.m4a", out, tenant=job.tenant,
                         content_type="audio/mp4", meta=probe(out).summary())
        finally:
            out.unlink(missing_ok=True)
        return "audio.m4a"

    def hls(self, job: Job, renditions: list[str]) -> list[str]:
        work = self.workdir(job) / "hls"
        shutil.rmtree(work, ignore_errors=True)
        names: list[str] = []
        variants: list[tuple[str, MediaInfo]] = []
        try:
            for r in renditions:
                art = self.svc.by_name(job.id, f"renditions/{r}.mp4", tenant=job.tenant)
                mp4 = local_copy(self.svc, art.sha256, self.workdir(job))
                variants.append((r, probe(mp4)))
                for path in hls.package(mp4, work / r):
                    name = f"hls/{r}/{path.name}"
                    self.svc.put(job.id, name, path, tenant=job.tenant)
                    names.append(name)
            self.svc.put(job.id, "hls/master.m3u8", hls.master_playlist(variants).encode(),
                         tenant=job.tenant, content_type="application/vnd.apple.mpegurl")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ["hls/master.m3u8", *names]

    def cleanup(self, job: Job) -> None:
        shutil.rmtree(self.workdir(job), ignore_errors=True)


def _url_name(url: str) -> str:
    from urllib.parse import urlsplit

    from treadle.media.sources import safe_filename

    return safe_filename(urlsplit(url).path.rsplit("/", 1)[-1] or "input")
