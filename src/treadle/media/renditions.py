"""Renditions (``360p``, ``720p``, …) and the plan of segments a transcode is split into."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from treadle.core.errors import InvalidInput
from treadle.media.probe import MediaInfo

PRESET = "veryfast"  # libx264: the benchmark runs ffmpeg with the same settings
CRF = 23
AUDIO_BITRATE = 128_000
GOP_SECONDS = 2  # a keyframe every 2 s: HLS segments of 4 s cut cleanly
_NAME = re.compile(r"^(\d{3,4})p$")
MAX_RENDITIONS = 6


@dataclass(frozen=True)
class Rendition:
    name: str
    height: int
    crf: int = CRF
    preset: str = PRESET
    audio_bitrate: int = AUDIO_BITRATE

    def size_for(self, info: MediaInfo) -> tuple[int, int]:
        """Width and height (even, never above the source's height, aspect kept)."""
        height = min(self.height, info.height) // 2 * 2
        width = max(2, round(info.width * height / info.height / 2) * 2)
        return width, max(2, height)

    def params(self) -> dict[str, Any]:
        return asdict(self)


def parse_renditions(spec: str | list[str]) -> list[Rendition]:
    """``"360p,720p"`` (or a list) -> renditions; anything else is invalid input."""
    if not isinstance(spec, str | list | tuple):
        raise InvalidInput("renditions must be names like \"360p,720p\" or a list of them")
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Rendition] = []
    for raw in names:
        name = str(raw).strip().lower()
        m = _NAME.match(name)
        if m is None or not 144 <= int(m.group(1)) <= 2160:
            raise InvalidInput(f"unknown rendition {str(raw)[:20]!r}: use e.g. 360p,720p "
                               "(144p to 2160p)")
        if name not in (r.name for r in out):
            out.append(Rendition(name, int(m.group(1))))
    if len(out) > MAX_RENDITIONS:
        raise InvalidInput(f"at most {MAX_RENDITIONS} renditions")
    return out


@dataclass(frozen=True)
class Segment:
    index: int
    start: float  # seconds, on a keyframe
    end: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan_segments(info: MediaInfo, target_seconds: float) -> list[Segment]:
    """Cut at the first keyframe at least ``target_seconds`` after the previous cut.

    Segments start on keyframes, so each can be decoded on its own, and the plan depends
    only on the input: a resumed job splits it the same way."""
    keys = info.keyframes or [0.0]
    cuts = [keys[0]]
    for k in keys[1:]:
        if k - cuts[-1] >= target_seconds and info.duration - k >= target_seconds / 4:
            cuts.append(k)
    ends = [*cuts[1:], info.duration]
    return [Segment(i, s, e) for i, (s, e) in enumerate(zip(cuts, ends, strict=True))]


def output_key(input_sha256: str, what: str, params: dict[str, Any]) -> str:
    """The key of an output: the input's content and every parameter that shapes it."""
    text = json.dumps({"input": input_sha256, "what": what, "params": params},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
