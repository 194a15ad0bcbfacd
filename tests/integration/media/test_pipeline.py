"""The media pipeline as a workflow, with real workers and real encodes (small inputs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest

from treadle import Treadle
from treadle.artifacts import LocalArtifactStore
from treadle.core.errors import InvalidInput
from treadle.core.job import JobFilter
from treadle.media import register, submit
from treadle.media.probe import probe
from treadle.streams.repo import StreamRepo
from treadle.testing import run_worker

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Any:
    a = Treadle(db_url, artifacts=LocalArtifactStore(tmp_path / "blobs"))
    register(a)
    a.migrate()
    yield a
    a.close()


def _names(app: Treadle, job_id: int) -> list[str]:
    return [x.name for x in app.job_artifacts(job_id)]


def _children(app: Treadle, job_id: int) -> list[Any]:
    """The pipeline's segment jobs (``ctx.map`` children), oldest first."""
    return sorted((j for j in app.list_jobs(JobFilter(limit=1000)) if j.parent_id == job_id),
                  key=lambda j: j.id)


def test_pipeline_end_to_end(app: Treadle, clip: Path, tmp_path: Path) -> None:
    handle = submit(app, clip, renditions="144p,240p", thumbnails=2, hls=True, audio=True,
                    segment_seconds=2, thumbnail_times=[1.52])
    with run_worker(app):
        job = handle.wait(120)
    assert job.status.value == "succeeded", job.error
    names = _names(app, job.id)
    for expected in ("source/clip.mp4", "renditions/144p.mp4", "renditions/240p.mp4",
                     "thumbnails/thumb_00.jpg", "thumbnails/thumb_01.jpg", "audio.m4a",
                     "hls/master.m3u8", "hls/144p/index.m3u8", "hls/240p/seg_00000.ts"):
        assert expected in names, expected
    assert sum(n.startswith("work/") for n in names) == 4  # 2 segments x 2 renditions
    steps = [s.name for s in app.job_steps(job.id)]
    assert steps[:4] == ["ingest", "encode", "concat:144p", "concat:240p"]
    r240 = app.artifacts.by_name(job.id, "renditions/240p.mp4")
    assert r240.step == "concat:240p" and r240.content_type == "video/mp4"
    assert (r240.meta["width"], r240.meta["height"]) == (320, 240)
    out = app.artifacts.download(r240, tmp_path / "r240.mp4")
    info = probe(out)
    assert info.frames == 100 and abs(info.duration - 4.0) < 0.15
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 100
    master = app.artifacts.read_bytes(app.artifacts.by_name(job.id, "hls/master.m3u8"))
    assert b"144p/index.m3u8" in master and b"RESOLUTION=320x240" in master
    assert job.result["renditions"]["144p"]["info"]["height"] == 144
    children = _children(app, job.id)
    assert len(children) == 4 and {c.task for c in children} == {"treadle.media.segment"}
    progress = [i.data for c in children for i in StreamRepo(app.store).read(c.id, 0)
                if i.kind == "progress"]
    assert {"done": 50.0, "total": 50.0, "message": "144p segment 0"} in progress
    exact = app.artifacts.by_name(job.id, "thumbnails/thumb_02.jpg")  # at 1.52 s exactly
    assert exact.meta == {"at": 1.52} and exact.step == "thumbnails"


def test_a_second_job_on_the_same_input_reencodes_nothing(app: Treadle, clip: Path) -> None:
    with run_worker(app):
        first = submit(app, clip, renditions="144p", thumbnails=0, segment_seconds=2).wait(120)
        second = submit(app, clip, renditions="144p", thumbnails=0, segment_seconds=2).wait(120)
    assert first.status.value == second.status.value == "succeeded"
    (encode,) = [s for s in app.job_steps(second.id) if s.name == "encode"]
    assert [r["reused"] for r in encode.result] == [True, True]
    a = app.artifacts.by_name(first.id, "renditions/144p.mp4")
    b = app.artifacts.by_name(second.id, "renditions/144p.mp4")
    assert a.sha256 == b.sha256  # the same bytes, stored once


@pytest.mark.parametrize("kind", ["not_media", "truncated", "truncated_faststart",
                                  "zero_seconds", "unsupported_codec"])
def test_bad_input_fails_permanently_and_leaves_nothing(
        app: Treadle, bad_inputs: dict[str, Path], kind: str) -> None:
    path = bad_inputs[kind]
    with pytest.raises(InvalidInput, match="not processable media"):
        submit(app, path, renditions="144p")  # refused before anything is stored
    assert app.list_jobs() == []
    # Past the submit-time probe (bytes already stored, as another producer could do):
    blob = app.artifacts.backend.put_file(path)
    handle = submit(app, {"sha256": blob.sha256, "name": path.name}, renditions="144p",
                    thumbnails=2)
    with run_worker(app):
        job = handle.wait(60)
    assert job.status.value == "failed"
    assert job.error is not None and job.error.error_class.value == "invalid_input"
    assert job.error.message.startswith("not processable media: ")
    assert job.attempt == 1  # permanent: not retried
    assert app.job_artifacts(job.id) == []


def test_refused_url_is_invalid_input(app: Treadle) -> None:
    handle = submit(app, {"url": "http://127.0.0.1:9/video.mp4"}, renditions="144p")
    with run_worker(app):
        job = handle.wait(60)
    assert job.status.value == "failed" and job.error is not None
    assert job.error.error_class.value == "invalid_input"
    assert "refused" in job.error.message
    assert job.attempt == 1  # permanent: not retried
    assert app.job_artifacts(job.id) == []
    steps: Any = register(app)
    assert list(steps.media_steps.workdir(job).glob("url-*")) == []  # no partial download


def test_a_hung_encode_fails_as_timeout_and_the_retry_finishes(
        app: Treadle, clip: Path) -> None:
    """The encoder hangs at frame 3 of the first segment, blocked in a call that never
    returns to Python; after ``stall_seconds`` without a frame the worker fails the attempt
    as ``timeout`` (the job's budget is minutes), and the retry encodes the input."""
    wf: Any = register(app)
    entered, release = threading.Event(), threading.Event()

    def hang_once(done: int) -> None:
        if done == 3 and not entered.is_set():
            entered.set()
            release.wait()  # uninterruptible, as a decoder stuck on a source would be

    wf.media_steps.frame_hook = hang_once
    handle = submit(app, clip, renditions="144p", thumbnails=0, stall_seconds=0.5)
    try:
        with run_worker(app):
            assert entered.wait(60)
            job = handle.wait(120)
    finally:
        release.set()
        wf.media_steps.frame_hook = None
    assert job.status.value == "succeeded", job.error
    assert job.timeout is not None and job.timeout >= 120  # the budget never came near
    (retried,) = [c for c in _children(app, handle.id) if c.attempt > 1]
    failed = [e for e in app.job_events(retried.id) if e.attempt == 1 and e.detail
              and "error" in e.detail]
    assert failed, app.job_events(retried.id)
    error = failed[0].detail["error"]
    assert error["class"] == "timeout"
    assert error["message"].startswith("stalled: no progress for ")
    assert "144p segment 0" in error["message"]


def test_two_workers_encode_segments_of_one_input_in_parallel(
        app: Treadle, clip: Path) -> None:
    """Each segment is a child job: two workers (one slot each) take segments of the same
    input, and the first two encodes provably overlap (each waits for the other at its
    first frame; a lone worker would break the barrier and fail the test)."""
    wf: Any = register(app)
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    arrived: list[int] = []
    passed: list[int] = []

    def meet(done: int) -> None:
        with lock:
            first_two = done == 0 and len(arrived) < 2
            if first_two:
                arrived.append(threading.get_ident())
        if first_two:
            barrier.wait()  # both encodes are at their first frame at the same time
            passed.append(threading.get_ident())

    wf.media_steps.frame_hook = meet
    handle = submit(app, clip, renditions="144p", thumbnails=0, segment_seconds=1)
    try:
        with run_worker(app, concurrency=1, name="worker-a"), \
                run_worker(app, concurrency=1, name="worker-b"):
            job = handle.wait(120)
    finally:
        wf.media_steps.frame_hook = None
    assert job.status.value == "succeeded", job.error
    assert len(set(passed)) == 2 and not barrier.broken
    children = _children(app, handle.id)
    assert len(children) == 4 and all(c.attempt == 1 for c in children)
    took = {e.worker for c in children for e in app.job_events(c.id) if e.reason == "claimed"}
    assert took == {"worker-a", "worker-b"}
    out = app.artifacts.by_name(job.id, "renditions/144p.mp4")
    assert out.meta["frames"] == 100


@pytest.mark.slow
def test_a_killed_worker_resumes_at_the_next_unfinished_segment(
        tmp_path: Path, media_dir: Path) -> None:
    """A `treadle worker` process is killed -9 after half the segments; a second one
    finishes the job, and at most the one segment in flight is encoded twice."""
    from treadle.media.synth import make_video

    src = make_video(media_dir / "eight.mp4", seconds=8, width=320, height=240, fps=25)
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("TREADLE_ARTIFACTS_URL", None)
    app = Treadle(db)
    register(app)
    app.migrate()
    try:
        handle = submit(app, src, renditions="240p", thumbnails=0, segment_seconds=1)
        # --prefetch 0: the killed worker holds only the segment in flight. (Claimed ahead,
        # it would also hold one it had not begun: that one runs again elsewhere with a
        # higher attempt number, but no work was lost on it.)
        cmd = [sys.executable, "-m", "treadle", "worker", "--db", db, "--concurrency", "1",
               "--prefetch", "0", "--lease-seconds", "1"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = [c for c in _children(app, handle.id) if c.status.value == "succeeded"]
            if len(done) >= 4:
                break
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            job = handle.wait(120)
        finally:
            second.terminate()
            second.wait(30)
        assert job.status.value == "succeeded", job.error
        encodes = _children(app, handle.id)
        assert len(encodes) == 8
        assert sum(c.attempt > 1 for c in encodes) <= 1  # only the one in flight ran twice
        assert probe(app.artifacts.download(
            app.artifacts.by_name(handle.id, "renditions/240p.mp4"),
            tmp_path / "out.mp4")).frames == 200
    finally:
        app.close()
