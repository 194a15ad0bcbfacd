"""``probe``: what a media file holds, and whether it can be processed at all.

One demux pass (no decoding) reads every packet's header: it gives the duration, the
video keyframes (where segments may start) and the frame count (progress totals), and it
finds truncated files (the container promises more than the packets hold). Then one frame
of each stream is decoded, so an unsupported or broken codec is refused here, before any
work or output. Everything refused is ``InvalidInput`` (permanent: retrying cannot help)
carrying the probe's own message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

from treadle.core.errors import InvalidInput

# The container may say a little more than its packets cover (rounding, the last frame's
# duration); a gap larger than this is a truncated file.
TRUNCATION_SLACK = 0.5


@dataclass(frozen=True)
class MediaInfo:
    format: str
    duration: float  # seconds
    size: int  # bytes
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int = 0
    channels: int = 0
    frames: int = 0  # video packets (frames) in the file
    keyframes: list[float] = field(default_factory=list)  # seconds from the start

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaInfo:
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        """What a user wants to see (no keyframe list)."""
        out = self.to_json()
        out.pop("keyframes")
        return out


def _refuse(path: Path, message: str) -> InvalidInput:
    return InvalidInput(f"not processable media: {message}", detail={"probe": message})


def probe(path: Path) -> MediaInfo:
    size = path.stat().st_size
    if size == 0:
        raise _refuse(path, "the file is empty")
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _refuse(path, str(exc)) from None
    try:
        return _probe(container, path, size)
    except av.FFmpegError as exc:
        raise _refuse(path, str(exc)) from None
    finally:
        container.close()


def _probe(container: av.container.InputContainer, path: Path, size: int) -> MediaInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise _refuse(path, "no audio or video stream")
    for stream in (video, audio):
        if stream is not None and stream.codec_context is None:
            raise _refuse(path, f"unsupported codec in the {stream.type} stream")
    keyframes: list[float] = []
    frames = 0
    end = 0.0
    streams = [s for s in (video, audio) if s is not None]
    for packet in container.demux(streams):
        if packet.pts is None or packet.time_base is None:
            continue
        t = float(packet.pts * packet.time_base)
        dur = float((packet.duration or 0) * packet.time_base)
        end = max(end, t + dur)
        if packet.stream is video:
            frames += 1
            if packet.is_keyframe:
                keyframes.append(t)
    start = float(container.start_time or 0) / av.time_base
    declared = float(container.duration or 0) / av.time_base
    duration = max(0.0, end - start)
    if duration <= 0 or (video is not None and frames == 0):
        raise _refuse(path, "the media has no duration (0 seconds or no frames)")
    if declared and declared - duration > TRUNCATION_SLACK + 0.05 * declared:
        raise _refuse(path, f"truncated: the container declares {declared:.2f} s but its "
                            f"packets end at {duration:.2f} s")
    _decode_one(path, video, audio)
    info = MediaInfo(
        format=container.format.name, duration=round(duration, 3), size=size,
        frames=frames, keyframes=[round(k - start, 3) for k in sorted(keyframes)],
    )
    if video is not None:
        rate = video.average_rate or video.guessed_rate
        info = _with(info, width=video.codec_context.width, height=video.codec_context.height,
                     fps=round(float(rate), 3) if rate else 0.0,
                     video_codec=video.codec_context.name)
    if audio is not None:
        info = _with(info, audio_codec=audio.codec_context.name,
                     sample_rate=audio.codec_context.sample_rate or 0,
                     channels=audio.codec_context.channels or 0)
    if info.has_video and (info.width <= 0 or info.height <= 0):
        raise _refuse(path, "the video stream has no frame size")
    return info


def _with(info: MediaInfo, **changes: Any) -> MediaInfo:
    from dataclasses import replace

    return replace(info, **changes)


def _decode_one(path: Path, *streams: av.stream.Stream | None) -> None:
    """Decode the first frame of each stream: a codec FFmpeg cannot decode is refused now."""
    for stream in streams:
        if stream is None:
            continue
        with av.open(str(path), "r") as c:
            s = c.streams[stream.index]
            try:
                for frame in c.decode(s):
                    del frame
                    break
                else:
                    raise _refuse(path, f"the {s.type} stream decodes to no frame")
            except av.FFmpegError as exc:
                raise _refuse(path, f"the {s.type} stream cannot be decoded: {exc}") from None
