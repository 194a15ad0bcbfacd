"""Synthesised test media (FFmpeg's ``testsrc2`` pattern and a sine tone), made with PyAV.

Tests and the benchmark generate their inputs with this: nothing is downloaded.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.filter import Graph
from av.video.frame import PictureType


def make_video(
    path: Path,
    *,
    seconds: float = 3.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    gop: int | None = None,
    audio: bool = True,
    codec: str = "libx264",
    container_format: str | None = None,
    faststart: bool = False,
) -> Path:
    """Write a test video (H.264 + AAC MP4 by default) with a keyframe every ``gop``
    frames (default: every second)."""
    options = {"movflags": "+faststart"} if faststart else {}
    out = av.open(str(path), "w", format=container_format, options=options)
    try:
        vs = out.add_stream(codec, rate=fps)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.gop_size = gop or fps
        if codec == "libx264":
            vs.codec_context.options = {"preset": "ultrafast", "crf": "30",
                                        "keyint_min": str(gop or fps), "sc_threshold": "0"}
        as_ = out.add_stream("aac", rate=48000, layout="stereo") if audio else None
        assert as_ is None or isinstance(as_, av.AudioStream)
        if seconds <= 0:  # testsrc2 reads duration=0 as "forever": a file with no frames
            out.start_encoding()
        else:
            _video(out, vs, seconds, width, height, fps)
        if as_ is not None and seconds > 0:
            _audio(out, as_, seconds)
        for stream in (vs, as_):
            if stream is not None:
                out.mux(stream.encode(None))
    finally:
        out.close()
    return path


def _video(out: av.container.OutputContainer, vs: av.VideoStream, seconds: float,
           width: int, height: int, fps: int) -> None:
    graph = Graph()
    src = graph.add("testsrc2", f"size={width}x{height}:rate={fps}:duration={seconds}")
    fmt = graph.add("format", "yuv420p")
    sink = graph.add("buffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    while True:
        try:
            frame = graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            return
        assert isinstance(frame, av.VideoFrame)
        frame.time_base = Fraction(1, fps)
        frame.pict_type = PictureType.NONE  # a source's "I" would force a keyframe per frame
        out.mux(vs.encode(frame))


def _audio(out: av.container.OutputContainer, as_: av.AudioStream, seconds: float) -> None:
    graph = Graph()
    src = graph.add("sine", f"frequency=440:sample_rate=48000:duration={seconds}")
    fmt = graph.add("aformat", "sample_fmts=fltp:channel_layouts=stereo:sample_rates=48000")
    sink = graph.add("abuffersink")
    src.link_to(fmt)
    fmt.link_to(sink)
    graph.configure()
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000, frame_size=1024)
    while True:
        try:
            frame = graph.pull()
        except (av.error.EOFError, av.error.BlockingIOError):
            break
        assert isinstance(frame, av.AudioFrame)
        for f in resampler.resample(frame):
            out.mux(as_.encode(f))
    for f in resampler.resample(None):
        out.mux(as_.encode(f))
