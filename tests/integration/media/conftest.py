"""Media inputs synthesised once per session with PyAV (no downloads): small and short,
so the suite stays fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadle.media.synth import make_video


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir: Path) -> Path:
    """4 s, 320x240, 25 fps, keyframe every second, H.264 + AAC."""
    return make_video(media_dir / "clip.mp4", seconds=4, width=320, height=240, fps=25)


@pytest.fixture(scope="session")
def bad_inputs(media_dir: Path, clip: Path) -> dict[str, Path]:
    """Inputs a pipeline must refuse (not media, truncated, 0 s, empty, unsupported
    codec)."""
    data = clip.read_bytes()
    faststart = make_video(media_dir / "fs.mp4", seconds=4, faststart=True)
    out = {
        "not_media": media_dir / "notes.mp4",
        "truncated": media_dir / "truncated.mp4",
        "truncated_faststart": media_dir / "truncated_fs.mp4",
        "zero_seconds": make_video(media_dir / "zero.mp4", seconds=0),
        "empty": media_dir / "empty.mp4",
    }
    out["not_media"].write_bytes(b"these are plain text notes, not a video\n" * 100)
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["truncated_faststart"].write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    out["empty"].write_bytes(b"")
    # An MP4 whose video sample entry names a codec FFmpeg does not know ('zzz9').
    plain = make_video(media_dir / "plain.mp4", seconds=2, audio=False)
    out["unsupported_codec"] = media_dir / "unsupported.mp4"
    out["unsupported_codec"].write_bytes(plain.read_bytes().replace(b"avc1", b"zzz9"))
    return out
