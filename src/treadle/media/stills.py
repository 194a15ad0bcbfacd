"""Thumbnails (JPEG, through FFmpeg's MJPEG encoder: no imaging library needed).

N evenly spaced thumbnails only need *a* representative frame near each time, so only
keyframes are decoded (``skip_frame=NONKEY``: the decoder drops the rest unread); exact
times decode forward from the keyframe before them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from treadle.core.errors import InvalidInput
from treadle.media.probe import MediaInfo

THUMB_WIDTH = 320
MAX_THUMBNAILS = 100


def even_times(info: MediaInfo, count: int) -> list[float]:
    if not 1 <= count <= MAX_THUMBNAILS:
        raise InvalidInput(f"thumbnails: between 1 and {MAX_THUMBNAILS}")
    return [round((i + 0.5) * info.duration / count, 3) for i in range(count)]


def thumbnail(src: Path, info: MediaInfo, at: float, out: Path, *, exact: bool = False) -> Path:
    """Write one JPEG of the frame at (or, not ``exact``, the keyframe before) ``at`` s."""
    width = min(THUMB_WIDTH, info.width) // 2 * 2
    height = max(2, round(info.height * width / info.width / 2) * 2)
    with av.open(str(src), "r") as inp:
        vin = inp.streams.video[0]
        if not exact:
            vin.codec_context.skip_frame = "NONKEY"
        if vin.time_base is not None:
            inp.seek(int(max(0.0, at) / vin.time_base), stream=vin, backward=True,
                     any_frame=False)
        chosen = None
        for frame in inp.decode(vin):
            chosen = frame
            if not exact or (frame.time is not None and frame.time >= at - 1e-3):
                break
        if chosen is None:
            raise InvalidInput(f"no frame at {at:.2f} s")
        jpeg = _jpeg(chosen.reformat(width, height, "yuvj420p"))
    out.write_bytes(jpeg)
    return out


def _jpeg(frame: av.VideoFrame) -> bytes:
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"q:v": "3"}
    frame.pts = 0
    packets = [*ctx.encode(frame), *ctx.encode(None)]
    return b"".join(bytes(p) for p in packets)
