"""HLS packaging: each MP4 rendition remuxed (no re-encoding) into MPEG-TS segments and a
media playlist by FFmpeg's ``hls`` muxer, plus a master playlist naming them all."""

from __future__ import annotations

from pathlib import Path

import av

from treadle.media.probe import MediaInfo

HLS_SECONDS = 4


def package(rendition_mp4: Path, out_dir: Path) -> list[Path]:
    """``out_dir/index.m3u8`` and ``out_dir/seg_NNNNN.ts`` from one MP4; returns them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    playlist = out_dir / "index.m3u8"
    options = {"hls_time": str(HLS_SECONDS), "hls_playlist_type": "vod",
               "hls_segment_filename": str(out_dir / "seg_%05d.ts"),
               "hls_flags": "independent_segments"}
    with av.open(str(rendition_mp4), "r") as inp, \
            av.open(str(playlist), "w", format="hls", options=options) as outp:
        mapping = {s.index: outp.add_stream_from_template(s) for s in inp.streams
                   if s.type in ("video", "audio")}
        for packet in inp.demux():
            if packet.dts is None or packet.stream.index not in mapping:
                continue
            packet.stream = mapping[packet.stream.index]
            outp.mux(packet)
    return [playlist, *sorted(out_dir.glob("seg_*.ts"))]


def master_playlist(variants: list[tuple[str, MediaInfo]]) -> str:
    """``#EXTM3U`` naming each variant's ``<name>/index.m3u8`` with bandwidth and size."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for name, info in variants:
        bandwidth = int(info.size * 8 / max(info.duration, 0.001) * 1.1)
        lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},"
                     f"RESOLUTION={info.width}x{info.height}")
        lines.append(f"{name}/index.m3u8")
    return "\n".join(lines) + "\n"
