"""Worker CPU and statements per job of a drain (issue 13): what a job costs the workers.

    .venv/bin/python -m bench.drain_cpu                                  # SQLite, 20,000 jobs
    .venv/bin/python -m bench.drain_cpu --backend postgres --jobs 20000 --runs 3
    .venv/bin/python -m bench.drain_cpu --profile pyspy    # + py-spy of worker 0 (in the venv)

The hand-off bench's drain (``bench/handoff_bench.py``: 2 ``treadle worker`` processes,
``--concurrency 8``, defaults otherwise, jobs that append a line to a file), measured so
that a shared machine's load does not move the figure: the jobs are enqueued into a
paused queue, the workers start and settle, then the queue is resumed and the workers'
CPU time (user + sys of each process, all threads, from /proc) is read at the resume and
once every job has succeeded. Start-up (imports, migrations check) is left out.

With ``--count``, statements are counted inside each worker (``bench/statement_count.py``,
installed by ``bench/drain_cpu_worker.py``; executemany counts each row), read over the
same window through a snapshot file the worker writes on SIGUSR1; transaction control and
SQLite's ``PRAGMA data_version`` change checks are counted apart. Counting costs CPU, so
take CPU/job from a run without it. SQLite's write lock is timed in every run: the time
busy retries waited for it, and the time write transactions held it (BEGIN granted to
COMMIT done). Wall-clock jobs/s (first to last job start, from the file) is printed too,
but on a loaded machine only CPU/job and statements/job are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, ProcGroup, wait_until

sys.path.insert(0, str(REPO_ROOT / "bench" / "peers"))
from append_task import count_lines, read_lines


def _cpu(pid: int) -> float:
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """(user, sys) CPU seconds of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _switches(pid: int) -> int:
    """Context switches of every thread of a process (voluntary + involuntary)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.endswith("ctxt_switches:") or "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


def _snapshot(pids: list[int], tmp: Path, tag: str) -> list[dict[str, Any]]:
    """Ask every worker for its statement counts; wait until each has written them."""
    out = []
    for i, pid in enumerate(pids):
        f = tmp / f"stmts-{i}.json"
        f.unlink(missing_ok=True)
        os.kill(pid, signal.SIGUSR1)
        wait_until(f.exists, timeout=30, interval=0.01, what=f"statement snapshot {tag}")
        time.sleep(0.01)
        out.append(json.loads(f.read_text()))
    return out


def _diff(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> dict[str, Any]:
    labels: dict[str, int] = {}
    control = checks = waits = retries = txs = 0
    wait_s = held_s = 0.0
    held_by: dict[str, list[float]] = {}
    for a, b in zip(after, before, strict=True):
        for k, (n, secs) in a.get("lock_held_by", {}).items():
            n0, s0 = b.get("lock_held_by", {}).get(k, (0, 0.0))
            acc = held_by.setdefault(k, [0, 0.0])
            acc[0] += n - n0
            acc[1] += secs - s0
        txs += a["transactions"] - b["transactions"]
        held_s += a["lock_held_seconds"] - b["lock_held_seconds"]
        waits += a["lock_waits"] - b["lock_waits"]
        retries += a["lock_retries"] - b["lock_retries"]
        wait_s += a["lock_wait_seconds"] - b["lock_wait_seconds"]
        for k, v in a["by_label"].items():
            labels[k] = labels.get(k, 0) + v - b["by_label"].get(k, 0)
        control += a["control"] - b["control"]
        checks += a["change_checks"] - b["change_checks"]
    return {"by_label": {k: v for k, v in sorted(labels.items(), key=lambda kv: -kv[1]) if v},
            "control": control, "change_checks": checks, "lock_waits": waits,
            "lock_retries": retries, "lock_wait_seconds": round(wait_s, 3),
            "transactions": txs, "lock_held_seconds": round(held_s, 3),
            # Write transactions and the seconds they held the lock, by thread and flush.
            "lock_held_by": {k: [int(n), round(secs, 3)] for k, (n, secs) in held_by.items()}}


def one_run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from bench.handoff_bench import _TreadleDb

    path = str(tmp / f"append-{time.monotonic_ns()}.txt")
    with _TreadleDb(a.backend, tmp) as db:
        store = db.app.store
        store.set_queue("default", paused=True)
        task = db.app.tasks["append"]
        for start in range(0, a.jobs, 1000):
            task.defer_many([{"path": path, "i": i, "enqueued": 0.0}
                             for i in range(start, min(a.jobs, start + 1000))])
        env = {**os.environ, "TREADLE_DATABASE_URL": db.url,
               "DRAIN_CPU_SNAPSHOT_DIR": str(tmp),
               "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
        argv = ["worker", "--app", "bench.apps.append_app:app", "--db", db.url,
                "--queues", "default", "--concurrency", str(a.concurrency),
                "--log-level", "warning", *a.treadle_args]
        group = ProcGroup()
        for i in range(a.workers):
            cmd = [sys.executable, "-m", "bench.drain_cpu_worker", str(i), *argv]
            group.start(cmd, env={**env, "DRAIN_CPU_COUNT": "1" if a.count else "0"},
                        cwd=REPO_ROOT,
                        log_path=tmp / f"worker-{i}.log")
        try:
            time.sleep(a.settle)
            group.check_alive()
            pids = [p.pid for p in group.procs]
            before = _snapshot(pids, tmp, "before")
            cpu0 = [_cpu(p) for p in pids]
            split0 = [_cpu_split(p) for p in pids]
            sw0 = sum(_switches(p) for p in pids)
            spy = None
            if a.profile == "pyspy":  # worker 0, over the drain only
                # --gil: only the thread holding the GIL, i.e. Python running, not waits.
                spy = subprocess.Popen(
                    [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "250",
                     "--gil", "-f", "raw", "-o", str(tmp / "pyspy.txt"), "--pid", str(pids[0])],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            t0 = time.monotonic()
            store.set_queue("default", paused=False)

            def done() -> bool:
                group.check_alive()
                if count_lines(path) < a.jobs:
                    return False
                return store.count_by_status().get("succeeded", 0) >= a.jobs

            wait_until(done, timeout=1800, interval=0.05, what="drain")
            cpu1 = [_cpu(p) for p in pids]
            split1 = [_cpu_split(p) for p in pids]
            sw1 = sum(_switches(p) for p in pids)
            t1 = time.monotonic()
            after = _snapshot(pids, tmp, "after")
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
        finally:
            group.stop()
    starts = [s for _, _, s in read_lines(path)]
    os.unlink(path)
    cpu = sum(cpu1) - sum(cpu0)
    stm = _diff(after, before)
    n = len(starts)
    return {
        "jobs": n, "cpu_seconds": round(cpu, 3),
        "cpu_us_per_job": round(cpu / n * 1e6, 1),
        "per_worker_cpu_s": [round(y - x, 3) for x, y in zip(cpu0, cpu1, strict=True)],
        "sys_us_per_job": round(sum(y[1] - x[1] for x, y in zip(split0, split1, strict=True))
                                / max(1, a.jobs) * 1e6, 1),
        "switches_per_job": round((sw1 - sw0) / max(1, a.jobs), 2),
        "statements_per_job": round(sum(stm["by_label"].values()) / n, 3),
        "transactions_per_job": round(stm["transactions"] / n, 4),
        "lock_held_s": stm["lock_held_seconds"],
        "change_checks_per_job": round(stm["change_checks"] / n, 3),
        "lock_wait_s": stm["lock_wait_seconds"], "lock_waits": stm["lock_waits"],
        "lock_retries": stm["lock_retries"],
        "statements": stm,
        "jobs_per_s_wall": round(n / (max(starts) - min(starts)), 1),
        "window_s": round(t1 - t0, 3),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--count", action="store_true",
                   help="count statements too (costs the workers CPU: a separate run)")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--profile", choices=("none", "pyspy"), default="none")
    p.add_argument("--keep", help="directory to keep the py-spy output in")
    p.add_argument("--json", help="write the runs here")
    p.add_argument("treadle_args", nargs="*", help="more `treadle worker` options (after --)")
    a = p.parse_args()
    runs = []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="drain-cpu-") as d:
            r = one_run(a, Path(d))
            if a.profile == "pyspy":
                from bench.profiling import summarise_collapsed

                raw = Path(d) / "pyspy.txt"
                if a.keep:
                    Path(a.keep).mkdir(parents=True, exist_ok=True)
                    (Path(a.keep) / "pyspy.txt").write_bytes(raw.read_bytes())
                print(summarise_collapsed(raw, top=60))
        runs.append(r)
        brief = {k: v for k, v in r.items() if k != "statements"}
        print(json.dumps(brief))
        print(json.dumps(r["statements"], indent=1))
    print("median cpu_us_per_job:", statistics.median(r["cpu_us_per_job"] for r in runs))
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
