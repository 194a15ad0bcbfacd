"""Python sandboxes: one bwrap'd interpreter per instance, driven over a pipe."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from treadle.core.errors import ResourceExhausted, SandboxViolation, TreadleError
from treadle.sandbox import outcome, process, procstat, seccomp
from treadle.sandbox.bindings import EMIT_FRAME_BYTES, HostCalls
from treadle.sandbox.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelOverflow,
    ChannelTimeout,
    Exchange,
    WatchdogTripped,
    attach_logs,
)
from treadle.sandbox.limits import Limits
from treadle.sandbox.spec import RunUsage, WorkerSpec

READY_TIMEOUT = 10.0
# CPU a warm instance may use between two runs (finishing the reply, blocking on read).
IDLE_CPU_SLACK = 0.02


@cache
def boot_source() -> str:
    return resources.files("treadle.sandbox").joinpath("_pyboot.py").read_text("utf-8")


class PyInstance:
    """A sandboxed interpreter. Fresh ones wait for code; warm ones keep a handler."""

    def __init__(self, tmp_bytes: int) -> None:
        self.tmp_bytes = tmp_bytes
        argv = process.bwrap_argv(tmp_bytes=tmp_bytes)
        self.proc: subprocess.Popen[bytes] = process.spawn(
            argv, boot_source(), [seccomp.exec_filter().hex()]
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        # Frames are capped generously here; real per-run limits are checked per frame.
        self.chan = Channel(self.proc.stdout.fileno(), self.proc.stdin.fileno(), 64 << 20)
        self.ready = False
        self.initialised = False  # has user code (a warm `get` instance)
        self.dead = False
        self.created = time.monotonic()
        self.last_used = self.created
        self._inner = 0  # pid of the sandboxed interpreter (PID 1 of its namespace)
        self._stat: procstat.StatFile | None = None
        self._idle_cpu: float | None = None  # its CPU time when its last run ended

    def wait_ready(self, deadline: float | None = None) -> None:
        if self.ready:
            return
        try:
            msg = self.chan.recv(deadline or time.monotonic() + READY_TIMEOUT)
        except ChannelError as exc:
            self.kill()
            raise TreadleError(f"python sandbox failed to start: {exc}") from None
        if msg.get("t") != "ready":
            self.kill()
            raise TreadleError("python sandbox sent an unexpected greeting")
        self.ready = True

    def run(
        self,
        spec: WorkerSpec,
        limits: Limits,
        input_json: str,
        calls: HostCalls,
        *,
        keep: bool,
        tmp_bytes: int,
        usage: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None]:
        """Run the handler once; returns (output, logs, started_at). Raises classified errors.

        On any failure the instance is killed (a warm one is never reused after an error
        that could have left it in a bad state, except ordinary user exceptions).
        """
        self.wait_ready()
        self.chan.max_frame = (limits.max_output_bytes + limits.max_log_bytes + (64 << 10)
                               + EMIT_FRAME_BYTES)
        if self.initialised:
            request: dict[str, Any] = {"t": "run", "input": input_json}
        else:
            request = {
                "t": "init",
                "code": spec.code,
                "input": input_json,
                "kv": spec.kv,
                "fetch": bool(spec.fetch_allow),
                "limits": {**limits.to_dict(), "keep": keep, "fsize_bytes": tmp_bytes},
            }
        ex = Exchange(calls, limits.max_log_bytes)
        try:
            return self._exchange(ex, request, limits, calls, keep, usage)
        except TreadleError as err:
            # Console output written before the failure belongs to the run's record.
            attach_logs(err, ex.logs)
            raise

    def _exchange(
        self, ex: Exchange, request: dict[str, Any], limits: Limits, calls: HostCalls,
        keep: bool, usage: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None]:
        deadline = time.monotonic() + limits.timeout
        self.last_used = time.monotonic()
        cpu0 = self._threads_and_cpu()[1] if usage is not None else 0.0
        try:
            reply = ex.run(self.chan, request, deadline, self._cpu_watchdog(limits))
            if usage is not None and self._inner:  # measured before anything kills it
                usage.cpu_seconds = max(0.0, self._threads_and_cpu()[1] - cpu0)
                usage.peak_memory_bytes = procstat.peak_rss(self._inner)
        except ChannelTimeout:
            self.kill()
            raise outcome.timeout(limits.timeout) from None
        except WatchdogTripped:
            self.kill()
            raise ResourceExhausted(
                "CPU time limit exceeded (sandbox killed)", detail={"kind": "cpu"}
            ) from None
        except ChannelOverflow as exc:
            self.kill()
            raise ResourceExhausted(str(exc), detail={"kind": "output"}) from None
        except ChannelClosed:
            self.kill(wait=True)  # its exit status says what happened
            raise outcome.from_exit(self.proc.returncode, "python") from None
        except ChannelError as exc:
            self.kill()
            raise SandboxViolation(f"protocol violation: {exc}") from None
        self.initialised = True
        if ex.stale_calls or reply.get("dirty"):
            # A warm instance with threads or timers left, or calls made outside their
            # run, is never reused: its leftovers would run (and call) during the next run.
            self.kill()
        if ex.stale_calls:
            raise SandboxViolation("protocol violation: host call of another run")
        if not reply.get("ok"):
            err = outcome.from_reply(reply, calls.limit_hit, limits.max_host_calls)
            if reply.get("kind") not in ("user", "host") or not keep:
                self.kill()
            else:
                self._end_of_run()  # a handler that raised may have left threads too
            raise err
        if calls.limit_hit:
            self.kill()
            raise outcome.from_reply({"kind": "host"}, True, limits.max_host_calls)
        try:
            output = outcome.parse_output(str(reply.get("output")))
        except TreadleError:
            self.kill()
            raise
        if not keep:
            self.kill()
        else:
            self._end_of_run()
        return output, ex.logs, ex.started_at

    def _cpu_watchdog(self, limits: Limits) -> Callable[[], str | None]:
        """CPU time of this run, polled only while the run lasts (not per fast run).

        RLIMIT_CPU's soft signal can be ignored by user code, and a warm instance's hard
        limit spans all its runs: the parent's count is the one that holds per run.
        """
        base: list[float] = []

        def poll() -> str | None:
            pid = self.inner_pid()
            if not pid:
                return None
            cpu = self._threads_and_cpu()[1]
            if not base:
                # A warm instance counts from the end of its last run; a fresh one from
                # the first poll (the first 10 ms go uncounted, start-up is not the run's).
                base.append(self._idle_cpu if self._idle_cpu is not None else cpu)
            return "cpu" if cpu - base[0] > limits.cpu_seconds else None

        return poll

    def inner_pid(self) -> int:
        """The sandboxed interpreter's pid (PID 1 of its namespace), found once."""
        if not self._inner:
            tree = procstat.descendants(self.proc.pid)
            self._inner = tree[-1] if len(tree) > 1 else 0
        return self._inner

    def _threads_and_cpu(self) -> tuple[int, float]:
        if self._stat is None:
            if not self.inner_pid():
                return 0, 0.0
            try:
                self._stat = procstat.StatFile(self._inner)
            except OSError:
                return 0, 0.0
        return self._stat.threads_and_cpu()

    # The sandbox's own report of leftovers ("dirty") comes from code the user can patch;
    # these checks are made from outside, in /proc, and do not trust it.
    def _end_of_run(self) -> None:
        threads, cpu = self._threads_and_cpu()
        if threads != 1:
            self.kill()
            return
        self._idle_cpu = cpu

    def reusable(self) -> bool:
        """A warm instance that burnt no CPU since its last run (a signal handler or a
        timer would show up here); one that did is killed, and a fresh one is used."""
        if self.dead:
            return False
        if self._idle_cpu is None or not self._inner:
            return True
        if self._threads_and_cpu()[1] - self._idle_cpu < IDLE_CPU_SLACK:
            return True
        self.kill()
        return False

    def kill(self, wait: bool = False) -> None:
        if not self.dead:
            self.dead = True
            process.kill(self.proc, wait=wait)
            if self._stat is not None:
                self._stat.close()
