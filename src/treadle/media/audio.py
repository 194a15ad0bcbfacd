"""Audio extraction to an AAC ``.m4a``: copied when the source is already AAC, else
transcoded (never the video)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from treadle.core.errors import InvalidInput
from treadle.media.encode import SAMPLE_RATE
from treadle.media.probe import MediaInfo
from treadle.media.renditions import AUDIO_BITRATE


def extract_audio(src: Path, info: MediaInfo, out: Path) -> Path:
    if not info.has_audio:
        raise InvalidInput("the input has no audio stream to extract")
    with av.open(str(src), "r") as inp, av.open(str(out), "w", format="ipod") as outp:
        ain = inp.streams.audio[0]
        if info.audio_codec == "aac":
            aout = outp.add_stream_from_template(ain)
            for packet in inp.demux(ain):
                if packet.dts is None:
                    continue
                packet.stream = aout
                outp.mux(packet)
            return out
        enc = outp.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        enc.bit_rate = AUDIO_BITRATE
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE,
                                      frame_size=1024)
        samples = 0
        for frame in [*_frames(inp, ain), None]:
            for rf in resampler.resample(frame):
                rf.pts, rf.time_base = samples, Fraction(1, SAMPLE_RATE)
                samples += rf.samples
                outp.mux(enc.encode(rf))
        outp.mux(enc.encode(None))
    return out


def _frames(inp: av.container.InputContainer, stream: av.AudioStream) -> list[av.AudioFrame]:
    out = []
    for frame in inp.decode(stream):
        frame.pts = None
        out.append(frame)
    return out
