"""Shared helpers for the benchmark runner: statistics, databases, processes, machine info."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PEERS_DIR = BENCH_DIR / "peers"
VENVS_DIR = BENCH_DIR / ".venvs"

PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
# The API benches' admin key (``ApiConfig(admin_key=...)`` or ``TREADLE_ADMIN_KEY``).
ADMIN_KEY = "bench-admin-key-0123456789"


def log(msg: str) -> None:
    """Progress output goes to stderr so stdout stays clean for JSON."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]), same as numpy's default."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile by nearest rank: always a value that was measured."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p95_ms": round(percentile(samples_ms, 95), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "min_ms": round(min(samples_ms), 3) if samples_ms else math.nan,
        "max_ms": round(max(samples_ms), 3) if samples_ms else math.nan,
        "mean_ms": round(statistics.fmean(samples_ms), 3) if samples_ms else math.nan,
    }


def rate(jobs: int, seconds: float) -> dict[str, float]:
    return {
        "jobs": jobs,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(jobs / seconds, 1) if seconds > 0 else math.nan,
    }


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    vals = [float(r[key]) for r in runs if key in r and r[key] is not None]
    return statistics.median(vals) if vals else math.nan


# --------------------------------------------------------------------------- PostgreSQL


def pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "treadle_bench",
                      admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """Create a fresh database, yield its URL, drop it afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rpartition("/")[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(backend: str, prefix: str,
                     admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh store URL for ``backend``: a new PostgreSQL database (``postgres``) or a
    SQLite file in a temporary directory (anything else); removed afterwards."""
    if backend == "postgres":
        with fresh_pg_database(prefix, admin_url) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"


def pg_server_version() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    assert row and sync and fsync
    return f"{row[0]} (synchronous_commit={sync[0]}, fsync={fsync[0]})"


@contextlib.contextmanager
def fresh_sqlite_path(tmp_root: Path) -> Iterator[Path]:
    d = tmp_root / f"sqlite_{secrets.token_hex(4)}"
    d.mkdir(parents=True)
    try:
        yield d / "treadle.db"
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- processes


@dataclass
class ProcGroup:
    """A set of worker subprocesses started together and stopped together."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if log_path is not None:
            out = open(log_path, "wb")  # noqa: SIM115 - closed by the child lifetime
            self.logs.append(log_path)
        p = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def check_alive(self) -> None:
        for p, lp in zip(self.procs, self.logs + [None] * len(self.procs), strict=False):
            if p.poll() is not None:
                tail = ""
                if lp is not None and lp.exists():
                    tail = lp.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}\n{tail}")

    def stop(self, grace: float = 15.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                p.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()


def wait_until(pred: Any, *, timeout: float, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what or pred}")


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total"] = line.split(":", 1)[1].strip()
                break
    return info


def redis_server_version() -> str:
    try:
        out = subprocess.run(
            ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "INFO", "server"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        vers = [ln.split(":", 1)[1] for ln in out.splitlines() if ln.startswith("redis_version")]
        ver = vers[0].strip() if vers else "?"
        pers = subprocess.run(
            ["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "CONFIG", "GET", "appendonly"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.split()
        aof = pers[1] if len(pers) > 1 else "?"
        return f"{ver} (appendonly={aof})"
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def host_info() -> dict[str, Any]:
    """The ``host`` entry of a results document."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform()}


def results_doc(load_before: tuple[float, float, float], **parts: Any) -> dict[str, Any]:
    """A results document: date, host, load before and now, then ``parts`` in order."""
    from datetime import UTC, datetime

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": host_info(),
            "load": {"before": load_before, "after": os.getloadavg()}, **parts}


def results_header(doc: dict[str, Any]) -> list[str]:
    """A results page's date, host and load lines (``doc`` has ``date``, ``host`` and,
    when measured, ``load``: 1/5/15-minute averages before and after)."""
    host = doc["host"]
    lines = [f"Date: {doc['date']} · Python {host['python']} · {host['cpus']} CPUs · "
             f"{host['platform']}"]
    load = doc.get("load")
    if load:
        lines.append(
            f"Load average (1/5/15 min) before: {' / '.join(f'{x:.2f}' for x in load['before'])};"
            f" after: {' / '.join(f'{x:.2f}' for x in load['after'])}. The machine is shared "
            "with other sessions' work: figures move by tens of percent between runs.")
    return lines


def write_results(out: Path, doc: dict[str, Any], markdown: str) -> None:
    """``out``.json and ``out``.md; the page is printed too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(dump_json(doc) + "\n")
    out.with_suffix(".md").write_text(markdown)
    print(out.with_suffix(".md").read_text())


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)
