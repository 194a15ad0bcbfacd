"""Transcoding one segment to one rendition (H.264/AAC MP4), and joining segments.

A segment starts on a source keyframe, so it is decoded on its own after a seek. Its
output starts with an IDR frame and uses the same encoder settings as every other
segment of the rendition, so the segments are joined by copying packets (no re-encoding):
timestamps are shifted by each segment's planned start. Containers and frames are closed
and dropped as soon as they are done with (PyAV holds FFmpeg memory until then).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType

from treadle.media.probe import MediaInfo
from treadle.media.renditions import GOP_SECONDS, Rendition, Segment

SAMPLE_RATE = 48_000
EPS = 1e-3
Tick = Callable[[int], None]


def _fps(info: MediaInfo) -> Fraction:
    return Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(25)


def encode_segment(
    src: Path, info: MediaInfo, seg: Segment, rendition: Rendition, out: Path,
    tick: Tick | None = None,
) -> int:
    """Write ``seg`` of ``src`` as ``rendition`` to ``out`` (MP4); returns frames encoded."""
    fps = _fps(info)
    width, height = rendition.size_for(info)
    frames = 0
    with av.open(str(src), "r") as inp, av.open(str(out), "w", format="mp4") as outp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        vout = outp.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        gop = max(1, round(float(fps) * GOP_SECONDS))
        vout.codec_context.gop_size = gop
        vout.codec_context.options = {
            "preset": rendition.preset, "crf": str(rendition.crf), "keyint_min": str(gop),
            "sc_threshold": "0", "profile": "high"}
        aout = None
        resampler = None
        if ain is not None:
            aout = outp.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
            aout.bit_rate = rendition.audio_bitrate
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE,
                                          frame_size=1024)
        if seg.start > 0 and vin.time_base is not None:
            inp.seek(int(seg.start / vin.time_base), stream=vin, backward=True, any_frame=False)
        samples = 0
        video_done = False
        audio_done = ain is None
        streams = [s for s in (vin, ain) if s is not None]
        for packet in inp.demux(streams):
            if video_done and audio_done:
                break
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                    continue
                t = frame.time
                if isinstance(frame, av.VideoFrame):
                    if video_done or t < seg.start - EPS:
                        continue
                    if t >= seg.end - EPS:
                        video_done = True
                        continue
                    scaled = frame.reformat(width, height, "yuv420p")
                    scaled.pts = round((t - seg.start) * fps)
                    scaled.time_base = 1 / fps
                    scaled.pict_type = PictureType.NONE
                    outp.mux(vout.encode(scaled))
                    frames += 1
                    if tick is not None:
                        tick(1)
                elif aout is not None and resampler is not None:
                    if audio_done or t < seg.start - EPS:
                        continue
                    if t >= seg.end - EPS:
                        audio_done = True
                        continue
                    frame.pts = None  # the resampler counts samples from here
                    for rf in resampler.resample(frame):
                        rf.pts, rf.time_base = samples, Fraction(1, SAMPLE_RATE)
                        samples += rf.samples
                        outp.mux(aout.encode(rf))
        outp.mux(vout.encode(None))
        if aout is not None and resampler is not None:
            for rf in resampler.resample(None):
                rf.pts, rf.time_base = samples, Fraction(1, SAMPLE_RATE)
                samples += rf.samples
                outp.mux(aout.encode(rf))
            outp.mux(aout.encode(None))
    return frames


def concat(parts: list[tuple[Path, float]], out: Path) -> None:
    """Join MP4 segments (path, start seconds) into one MP4 by copying packets."""
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as outp:
        mapping: dict[int, av.stream.Stream] = {}
        last_dts: dict[int, float] = {}
        for n, (path, start) in enumerate(parts):
            with av.open(str(path), "r") as inp:
                if n == 0:
                    for s in inp.streams:
                        mapping[s.index] = outp.add_stream_from_template(s)
                for packet in inp.demux():
                    if packet.dts is None or packet.stream.index not in mapping:
                        continue
                    tb = packet.time_base
                    shift = round(start / tb)
                    index = packet.stream.index
                    dts = float((packet.dts + shift) * tb)
                    # An AAC segment starts with priming samples that overlap the end of the
                    # previous one: drop what would run time backwards (milliseconds).
                    if dts <= last_dts.get(index, -1e9):
                        continue
                    last_dts[index] = dts
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts = packet.dts + shift
                    packet.stream = mapping[index]
                    outp.mux(packet)
