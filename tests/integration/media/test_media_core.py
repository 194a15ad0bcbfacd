"""The media building blocks with real encodes and decodes (PyAV), no job machinery."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from treadle.core.errors import ErrorClass, InvalidInput
from treadle.media import audio, encode, hls, stills
from treadle.media.probe import probe
from treadle.media.progress import FrameMeter
from treadle.media.renditions import output_key, parse_renditions, plan_segments
from treadle.media.synth import make_video


def test_probe_reports_streams_and_keyframes(clip: Path) -> None:
    info = probe(clip)
    assert (info.width, info.height, info.video_codec, info.audio_codec) == \
        (320, 240, "h264", "aac")
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert info.frames == 100 and info.keyframes == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("kind", ["not_media", "truncated", "truncated_faststart",
                                  "zero_seconds", "empty", "unsupported_codec"])
def test_bad_input_is_invalid_input_with_the_probes_message(
        bad_inputs: dict[str, Path], kind: str) -> None:
    with pytest.raises(InvalidInput) as err:
        probe(bad_inputs[kind])
    assert err.value.error_class is ErrorClass.INVALID_INPUT
    assert err.value.message.startswith("not processable media: ")
    assert err.value.detail["probe"]


def test_segments_split_on_keyframes_and_join_without_reencoding(clip: Path,
                                                                  tmp_path: Path) -> None:
    info = probe(clip)
    plan = plan_segments(info, 2.0)
    assert [(s.start, s.end) for s in plan] == [(0.0, 2.0), (2.0, 4.0)]
    r = parse_renditions("144p")[0]
    parts = []
    for seg in plan:
        out = tmp_path / f"seg{seg.index}.mp4"
        frames = encode.encode_segment(clip, info, seg, r, out)
        assert frames == 50
        parts.append((out, seg.start))
    joined = tmp_path / "joined.mp4"
    encode.concat(parts, joined)
    j = probe(joined)
    assert (j.width, j.height, j.frames) == (192, 144, 100)
    assert j.duration == pytest.approx(4.0, abs=0.1)
    # Packets were copied: the joined video holds each segment's packets byte for byte.
    with av.open(str(parts[1][0])) as seg1, av.open(str(joined)) as whole:
        first = next(p for p in seg1.demux(video=0) if p.size)
        copied = [bytes(p) for p in whole.demux(video=0) if p.size]
        assert bytes(first) in copied
    with av.open(str(joined)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 100


def test_renditions_parse_and_keys() -> None:
    assert [r.name for r in parse_renditions("360p, 720p,360p")] == ["360p", "720p"]
    for bad in ("720", "99999p", "abc", "720p;rm"):
        with pytest.raises(InvalidInput):
            parse_renditions(bad)
    r = parse_renditions("360p")[0]
    k1 = output_key("a" * 64, "segment", {**r.params(), "start": 0.0, "end": 2.0})
    assert k1 == output_key("a" * 64, "segment", {**r.params(), "end": 2.0, "start": 0.0})
    assert k1 != output_key("b" * 64, "segment", {**r.params(), "start": 0.0, "end": 2.0})


def test_thumbnails_hls_and_audio(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    times = stills.even_times(info, 4)
    assert times == [0.5, 1.5, 2.5, 3.5]
    jpg = stills.thumbnail(clip, info, times[1], tmp_path / "t.jpg")
    data = jpg.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9"
    with av.open(str(jpg)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)
    files = hls.package(clip, tmp_path / "hls")
    playlist = files[0].read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
    assert [f.name for f in files[1:]] == ["seg_00000.ts"]  # 4 s input, 4 s segments
    assert "RESOLUTION=320x240" in hls.master_playlist([("240p", info)])
    m4a = audio.extract_audio(clip, info, tmp_path / "a.m4a")
    a = probe(m4a)
    assert a.audio_codec == "aac" and not a.has_video
    assert a.duration == pytest.approx(4.0, abs=0.1)


def test_audio_is_transcoded_when_not_aac(tmp_path: Path) -> None:
    src = make_video(tmp_path / "v.mkv", seconds=1, audio=True, container_format="matroska")
    info = probe(src)
    assert info.audio_codec == "aac"  # the synthesiser writes AAC; a re-encode path:
    out = audio.extract_audio(src, info, tmp_path / "a.m4a")
    assert probe(out).audio_codec == "aac"


def test_frame_meter_reports_every_frame_quietly_and_the_last_live() -> None:
    calls: list[tuple[float, float | None, str | None, bool]] = []

    class Sink:
        def progress(self, done: float, total: float | None = None,
                     message: str | None = None, *, live: bool = True) -> None:
            calls.append((done, total, message, live))

    meter = FrameMeter(Sink(), "144p segment 0", 3)
    for _ in range(3):
        meter.advance()
    meter.finish()
    assert calls == [(1, 3, "144p segment 0", False), (2, 3, "144p segment 0", False),
                     (3, 3, "144p segment 0", False), (3, 3, "144p segment 0", True)]


def test_memory_stays_bounded_over_many_segments(clip: Path, tmp_path: Path) -> None:
    """Containers and frames are closed: RSS after 20 more encodes grows by little."""
    import resource

    info = probe(clip)
    r = parse_renditions("144p")[0]
    seg = plan_segments(info, 2.0)[0]

    def run(n: int) -> None:
        for i in range(n):
            encode.encode_segment(clip, info, seg, r, tmp_path / f"m{i % 2}.mp4")

    run(5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(20)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 40_000  # KiB
