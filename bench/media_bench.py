"""Media pipeline benchmark (ADR 0014): `treadle media process` vs Debian's ffmpeg CLI.

Run from the repo root: .venv/bin/python bench/media_bench.py [--repeats 3] [--long]
Needs `ffmpeg` on PATH (Debian: apt-get install -y ffmpeg) for the reference side.
Writes bench/results/media.json and bench/results/media.md.

Work, both sides: from a generated 60 s 720p30 H.264/AAC input, two renditions (360p,
720p; libx264 veryfast CRF 23, 2 s GOP; AAC 128k), HLS for both (4 s segments), 4
thumbnails. ffmpeg does it as an expert would by hand: one process decoding once and
encoding both renditions, then HLS by stream copy, then one seek per thumbnail.

Also measured: resume after SIGKILL at about half of the encode steps (a `treadle worker`
process killed -9; a second one finishes: how many segments ran twice, and the extra
wall time beyond the lease expiry), and peak RSS (`--long`: also on a 10-minute input).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from treadle import Treadle  # noqa: E402
from treadle.media.synth import make_video  # noqa: E402

PY = sys.executable
LEASE = 5.0
GOP = 60  # 2 s at 30 fps, as the pipeline's encoder


def peak_rss_of(cmd: list[str], env: dict[str, str] | None = None
                ) -> tuple[float, int, str, str, float]:
    """Wall seconds, the child's peak RSS (KiB), stdout, stderr (through files: a chatty
    child never blocks on a full pipe) and its CPU seconds (user + system: less sensitive
    than wall time to other work on a shared machine)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {stderr[-3000:]}")
    return wall, usage.ru_maxrss, stdout, stderr, usage.ru_utime + usage.ru_stime


def treadle_run(src: Path, tmp: Path, renditions: str = "360p,720p") -> dict[str, Any]:
    db = f"sqlite:///{tmp / 'treadle.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([PY, "-m", "treadle", "migrate", "--db", db], check=True, env=env,
                   capture_output=True)
    wall, rss, out, _, cpu = peak_rss_of(
        [PY, "-m", "treadle", "media", "process", str(src), "--renditions", renditions,
         "--thumbnails", "4", "--hls", "--wait", "--worker", "--db", db], env=env)
    job_id = int(out.strip().splitlines()[-1])
    app = Treadle(db)
    try:
        job = app.get_job(job_id)
        arts = app.job_artifacts(job_id)
    finally:
        app.close()
    assert job.status.value == "succeeded", job.error
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss / 1024, 1), "job": job_id, "artifacts": len(arts)}


def ffmpeg_run(src: Path, tmp: Path, duration: float) -> dict[str, Any]:
    out = tmp / "ff"
    out.mkdir()
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", str(GOP),
           "-keyint_min", str(GOP), "-sc_threshold", "0", "-profile:v", "high",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
           "-movflags", "+faststart"]
    steps: list[list[str]] = [[
        "ffmpeg", "-y", "-v", "error", "-i", str(src),
        "-filter_complex", "[0:v]split=2[a][b];[a]scale=-2:360[v360];[b]scale=-2:720[v720]",
        "-map", "[v360]", "-map", "0:a", *enc, str(out / "360p.mp4"),
        "-map", "[v720]", "-map", "0:a", *enc, str(out / "720p.mp4")]]
    for r in ("360p", "720p"):
        (out / r).mkdir()
        steps.append(["ffmpeg", "-y", "-v", "error", "-i", str(out / f"{r}.mp4"), "-c", "copy",
                      "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod",
                      "-hls_segment_filename", str(out / r / "seg_%05d.ts"),
                      str(out / r / "index.m3u8")])
    for i in range(4):
        at = (i + 0.5) * duration / 4
        steps.append(["ffmpeg", "-y", "-v", "error", "-ss", f"{at:.3f}", "-i", str(src),
                      "-frames:v", "1", "-vf", "scale=320:-2", str(out / f"thumb_{i}.jpg")])
    start = time.perf_counter()
    peak, cpu = 0, 0.0
    for cmd in steps:
        _, rss, _, _, used = peak_rss_of(cmd)
        peak, cpu = max(peak, rss), cpu + used
    return {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(peak / 1024, 1)}


def _segment_jobs(app: Treadle, job_id: int) -> list[Any]:
    from treadle.core.job import JobFilter

    return [j for j in app.list_jobs(JobFilter(limit=1000)) if j.parent_id == job_id]


def resume_run(src: Path, tmp: Path) -> dict[str, Any]:
    """Kill -9 a worker at ~50% of the encode steps; a second worker finishes the job."""
    from treadle.media.pipeline import submit

    db = f"sqlite:///{tmp / 'resume.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([PY, "-m", "treadle", "migrate", "--db", db], check=True, env=env,
                   capture_output=True)
    app = Treadle(db)
    try:
        handle = submit(app, src, renditions="360p,720p", thumbnails=4, hls=True)
        # --prefetch 0: the killed worker holds only the segment in flight, so "ran twice"
        # counts work lost (a segment claimed ahead and never begun costs nothing).
        worker_cmd = [PY, "-m", "treadle", "worker", "--db", db, "--concurrency", "1",
                      "--prefetch", "0", "--lease-seconds", str(LEASE)]
        start = time.perf_counter()
        first = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        total_encodes = None
        killed_at = None
        killed_wall = dt.datetime.now(dt.UTC)
        while killed_at is None:
            time.sleep(0.2)
            steps = app.job_steps(handle.id)
            encodes = _segment_jobs(app, handle.id)  # one child job per segment
            done = [c for c in encodes if c.status.value == "succeeded"]
            if total_encodes is None and steps:
                info = steps[0].result["info"] if steps[0].result else None
                if info:
                    from treadle.media.probe import MediaInfo
                    from treadle.media.renditions import plan_segments

                    total_encodes = 2 * len(plan_segments(MediaInfo.from_json(info), 10.0))
            if total_encodes and len(done) >= total_encodes // 2:
                time.sleep(1.0)  # well into the next segment: its work is what a kill loses
                os.killpg(first.pid, signal.SIGKILL)
                first.wait()
                killed_at = time.perf_counter() - start
                killed_wall = dt.datetime.now(dt.UTC)
        second = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        job = handle.wait(timeout=1800)
        second.terminate()
        second.wait(30)
        wall = time.perf_counter() - start
        steps = app.job_steps(handle.id)
        encodes = _segment_jobs(app, handle.id)
    finally:
        app.close()
    assert job.status.value == "succeeded", job.error
    durations = [(c.finished_at - c.started_at).total_seconds() for c in encodes
                 if c.finished_at and c.started_at]
    rerun = [f"segment job {c.id}" for c in encodes if c.attempt > 1]
    # Work thrown away by the kill: from the end of the last step or segment finished
    # before it (the checkpoint a resume starts from) to the kill.
    before = [s.finished_at for s in [*steps, *encodes]
              if s.finished_at and s.finished_at <= killed_wall]
    lost = (killed_wall - max(before)).total_seconds() if before else killed_at
    return {"wall_s": round(wall, 2), "killed_at_s": round(killed_at, 2),
            "encode_steps": len(encodes), "steps_run_twice": rerun,
            "work_lost_s": round(lost, 2),
            "segment_step_median_s": round(statistics.median(durations), 2),
            "lease_s": LEASE}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--long", action="store_true", help="also peak RSS on a 10-minute input")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: apt-get install -y ffmpeg", file=sys.stderr)
        return 2
    load_start = os.getloadavg()  # the machine is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="media-bench-") as d:
        tmp = Path(d)
        src = make_video(tmp / "in720.mp4", seconds=a.seconds, width=1280, height=720, fps=30,
                         gop=GOP)
        rows: dict[str, list[dict[str, Any]]] = {"treadle": [], "ffmpeg": []}
        for i in range(a.repeats):  # interleaved: both sides see the same machine load
            for side in ("ffmpeg", "treadle"):
                run_dir = tmp / f"{side}-{i}"
                run_dir.mkdir()
                r = treadle_run(src, run_dir) if side == "treadle" \
                    else ffmpeg_run(src, run_dir, a.seconds)
                rows[side].append(r)
                print(side, i, r, flush=True)
                shutil.rmtree(run_dir, ignore_errors=True)
        (tmp / "resume").mkdir()
        resume = resume_run(src, tmp / "resume")
        print("resume", resume, flush=True)
        long = None
        if a.long:
            src10 = make_video(tmp / "in10min.mp4", seconds=600, width=640, height=360,
                               fps=25, gop=50)
            (tmp / "long").mkdir()
            long = treadle_run(src10, tmp / "long", renditions="240p")
            print("long", long, flush=True)
    load_end = os.getloadavg()
    med = {s: statistics.median(r["wall_s"] for r in rows[s]) for s in rows}
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "loadavg_1m_start_end": [round(load_start[0], 1), round(load_end[0], 1)]},
        "ffmpeg": subprocess.run(["ffmpeg", "-version"], capture_output=True,
                                 text=True).stdout.splitlines()[0],
        "input": {"seconds": a.seconds, "size": "1280x720", "fps": 30, "gop": GOP},
        "runs": rows,
        "median_wall_s": med,
        "ratio_treadle_over_ffmpeg": round(med["treadle"] / med["ffmpeg"], 3),
        "median_cpu_s": {s: statistics.median(r["cpu_s"] for r in rows[s]) for s in rows},
        "peak_rss_mib": {s: max(r["peak_rss_mib"] for r in rows[s]) for s in rows},
        "resume_after_sigkill": resume,
        "long_input_10min_360p_to_240p": long,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "media.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "media.md").write_text(report(result))
    print(report(result))
    return 0


def report(r: dict[str, Any]) -> str:
    m = r["median_wall_s"]
    res = r["resume_after_sigkill"]
    lines = [
        "# Media pipeline vs ffmpeg (ADR 0014)", "",
        f"{r['when']}, {r['machine']['cpus']} CPUs shared with other work (1-min load "
        f"{r['machine'].get('loadavg_1m_start_end')} at start/end), {r['ffmpeg']}.",
        f"Input: generated {r['input']['seconds']:.0f} s {r['input']['size']} "
        f"{r['input']['fps']} fps H.264/AAC. Work: 360p + 720p (libx264 veryfast CRF 23), "
        "HLS for both, 4 thumbnails.", "",
        "| side | median wall (s) | runs (s) | median CPU (s) | peak RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    cpu = r["median_cpu_s"]
    for side in ("treadle", "ffmpeg"):
        runs = ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"][side])
        lines.append(f"| {side} | {m[side]:.1f} | {runs} | {cpu[side]:.1f} | "
                     f"{r['peak_rss_mib'][side]} |")
    lines += [
        "", f"**Ratio treadle / ffmpeg: {r['ratio_treadle_over_ffmpeg']:.2f}x wall, "
        f"{cpu['treadle'] / cpu['ffmpeg']:.2f}x CPU** (target: within 1.3x).", "",
        "Resume after SIGKILL at ~50% of the segment jobs (`treadle worker` killed -9, a "
        f"second worker finishes after the {res['lease_s']:.0f} s lease expires): "
        f"{len(res['steps_run_twice'])} of {res['encode_steps']} segment jobs ran twice "
        f"({', '.join(res['steps_run_twice']) or 'none'}); work lost to the kill "
        f"{res.get('work_lost_s', float('nan')):.1f} s vs one segment job "
        f"{res['segment_step_median_s']:.1f} s (median); whole run {res['wall_s']:.1f} s, "
        f"killed at {res['killed_at_s']:.1f} s.",
    ]
    if r.get("long_input_10min_360p_to_240p"):
        lg = r["long_input_10min_360p_to_240p"]
        lines += ["", f"10-minute input (640x360 -> 240p, HLS, 4 thumbnails): "
                      f"{lg['wall_s']:.0f} s, peak RSS {lg['peak_rss_mib']} MiB."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
