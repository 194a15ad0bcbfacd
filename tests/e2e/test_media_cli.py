"""``treadle media process`` as a user runs it: the job id alone on the last stdout line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from treadle import Treadle
from treadle.media.synth import make_video

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TREADLE_ARTIFACTS_URL", None)
    return subprocess.run([sys.executable, "-m", "treadle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_process_wait_with_an_in_process_worker(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", seconds=2, width=160, height=120)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert _cli("migrate", "--db", db, cwd=tmp_path).returncode == 0
    r = _cli("media", "process", str(clip), "--renditions", "144p", "--thumbnails", "2",
             "--hls", "--wait", "--worker", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job_id = int(r.stdout.strip().splitlines()[-1])
    assert "renditions/144p.mp4" in r.stderr
    app = Treadle(db)
    try:
        assert app.get_job(job_id).status.value == "succeeded"
        assert "hls/master.m3u8" in [a.name for a in app.job_artifacts(job_id)]
    finally:
        app.close()
    # Without --wait: queued, the id alone on stdout.
    queued = _cli("media", "process", str(clip), "--renditions", "144p", "--db", db,
                  cwd=tmp_path)
    assert queued.returncode == 0 and queued.stdout.strip().isdigit()


def test_bad_input_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n" * 50)
    db = f"sqlite:///{tmp_path / 'm.db'}"
    assert _cli("migrate", "--db", db, cwd=tmp_path).returncode == 0
    r = _cli("media", "process", str(bad), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "not processable media" in r.stderr
    assert r.stdout == ""
    r = _cli("media", "process", str(tmp_path / "missing.mp4"), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "no such file" in r.stderr
    r = _cli("media", "process", "http://127.0.0.1:9/v.mp4", "--renditions", "720p,bogus",
             "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "unknown rendition" in r.stderr
    app = Treadle(db)
    try:
        assert app.list_jobs() == []
        assert not (tmp_path / "m.db-artifacts" / "sha256").exists()
    finally:
        app.close()
