"""JavaScript sandbox hosts: bwrap'd processes holding V8 isolates, watched by the parent."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from functools import cache
from importlib import resources
from importlib.util import find_spec
from typing import Any

from treadle.core.errors import MissingExtra, ResourceExhausted, SandboxViolation, TreadleError
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

READY_TIMEOUT = 20.0
_MR_MOUNT = "/opt/treadle"
# Resident memory a run may add on top of its isolate heap limit before the host is killed
# (V8 code space, compiler zones, Python objects of the host).
RSS_SLACK = 64 << 20


@cache
def mini_racer_dir() -> str:
    """Directory of the ``py_mini_racer`` package, bound read-only into the sandbox."""
    spec = find_spec("py_mini_racer")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("sandbox", "mini-racer")
    return os.path.realpath(next(iter(spec.submodule_search_locations)))


@cache
def boot_source() -> str:
    return resources.files("treadle.sandbox").joinpath("_jsboot.py").read_text("utf-8")


class JsHost:
    """One host process; serves one run at a time (callers hold ``lock``)."""

    def __init__(self, data_limit_mb: int, tmp_bytes: int) -> None:
        self.data_limit_mb = data_limit_mb
        self.tmp_bytes = tmp_bytes
        self.lock = threading.Lock()
        self.generation = 0
        self.proc: Any = None
        self.chan: Channel | None = None
        self.pids: list[int] = []
        # Contexts to drop, queued while the host was busy with a run: whoever holds the
        # lock next sends them (a busy host must not block the caller that evicts).
        self.pending_drops: list[tuple[str, int]] = []

    def ensure(self) -> Channel:
        """The live channel, (re)starting the host process when needed."""
        if self.chan is not None and self.proc is not None and self.proc.poll() is None:
            return self.chan
        self.kill()
        argv = process.bwrap_argv(
            tmp_bytes=self.tmp_bytes,
            ro_binds=((mini_racer_dir(), f"{_MR_MOUNT}/py_mini_racer"),),
        )
        args = [seccomp.exec_filter().hex(), str(self.data_limit_mb << 20), _MR_MOUNT]
        self.proc = process.spawn(argv, boot_source(), args)
        chan = Channel(self.proc.stdout.fileno(), self.proc.stdin.fileno(), 64 << 20)
        try:
            msg = chan.recv(time.monotonic() + READY_TIMEOUT)
        except ChannelError as exc:
            self.kill()
            raise TreadleError(f"JavaScript sandbox host failed to start: {exc}") from None
        if msg.get("t") != "ready":
            self.kill()
            raise TreadleError("JavaScript sandbox host sent an unexpected greeting")
        self.chan = chan
        self.generation += 1
        # The process tree (bwrap, its pid-1, the host) is fixed once the host is ready.
        self.pids = procstat.descendants(self.proc.pid)
        return chan

    def kill(self) -> None:
        if self.proc is not None:
            process.kill(self.proc)
        self.proc = None
        self.chan = None

    def drop(self, key: str, generation: int) -> None:
        """Forget a cached context (no-op when the host restarted since); holds ``lock``."""
        if generation == self.generation and self.chan is not None:
            try:
                self.chan.send({"t": "drop", "key": key})
            except ChannelError:
                self.kill()

    def drop_later(self, key: str, generation: int) -> None:
        """Drop a context now if the host is free, else when it next runs."""
        if self.lock.acquire(blocking=False):
            try:
                self.drop(key, generation)
            finally:
                self.lock.release()
        else:
            self.pending_drops.append((key, generation))

    def _flush_drops(self) -> None:
        while self.pending_drops:
            self.drop(*self.pending_drops.pop())

    def _watchdog(self, limits: Limits) -> Callable[[], str | None]:
        pids = self.pids
        base_rss, base_cpu = procstat.usage(pids)
        max_rss = base_rss + (limits.memory_mb << 20) + RSS_SLACK

        def poll() -> str | None:
            rss, cpu = procstat.usage(pids)
            if rss > max_rss:
                return "memory"
            if cpu - base_cpu > limits.cpu_seconds:
                return "cpu"
            return None

        return poll

    def run(
        self,
        spec: WorkerSpec,
        limits: Limits,
        input_json: str,
        calls: HostCalls,
        key: str | None,
        usage: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None, bool]:
        """One run; returns (output, logs, started_at, reused). Caller holds ``lock``."""
        self._flush_drops()
        chan = self.ensure()
        chan.max_frame = (limits.max_output_bytes + 4 * limits.max_log_bytes + (64 << 10)
                          + EMIT_FRAME_BYTES)
        request = {
            "t": "run",
            "key": key,
            "code": spec.code,
            "input": input_json,
            "allow_wasm": spec.allow_wasm,
            "kv": spec.kv,
            "fetch": bool(spec.fetch_allow),
            "limits": limits.to_dict(),
        }
        ex = Exchange(calls, limits.max_log_bytes)
        try:
            return self._exchange(chan, ex, request, limits, calls, usage)
        except TreadleError as err:
            # Console output written before the failure belongs to the run's record.
            attach_logs(err, ex.logs)
            raise

    def _exchange(
        self, chan: Channel, ex: Exchange, request: dict[str, Any], limits: Limits,
        calls: HostCalls, usage: RunUsage | None = None,
    ) -> tuple[Any, list[str], float | None, bool]:
        deadline = time.monotonic() + limits.timeout
        cpu0 = procstat.usage(self.pids)[1] if usage is not None else 0.0
        try:
            reply = ex.run(chan, request, deadline, self._watchdog(limits))
            if usage is not None:  # the host's CPU over this run (one run per host)
                usage.cpu_seconds = max(0.0, procstat.usage(self.pids)[1] - cpu0)
        except ChannelTimeout:
            self.kill()
            raise outcome.timeout(limits.timeout) from None
        except WatchdogTripped as exc:
            self.kill()
            what = "memory" if str(exc) == "memory" else "CPU time"
            raise ResourceExhausted(
                f"{what} limit exceeded (host killed)", detail={"kind": str(exc)}
            ) from None
        except ChannelOverflow as exc:
            self.kill()
            raise ResourceExhausted(str(exc), detail={"kind": "output"}) from None
        except ChannelClosed:
            rc = self.proc.wait() if self.proc is not None else None
            self.kill()
            raise outcome.from_exit(rc, "javascript") from None
        except ChannelError as exc:
            self.kill()
            raise SandboxViolation(f"protocol violation: {exc}") from None
        if ex.stale_calls:
            # The host tags calls with their run and refuses leftovers itself: a frame of
            # another run means it is out of step (or subverted). Start a new one.
            self.kill()
            raise SandboxViolation("protocol violation: host call of another run")
        reused = bool(reply.get("reused"))
        if not reply.get("ok") or calls.limit_hit:
            raise outcome.from_reply(reply, calls.limit_hit, limits.max_host_calls)
        text = str(reply.get("output"))
        if len(text.encode("utf-8", "surrogatepass")) > limits.max_output_bytes:
            raise ResourceExhausted(
                f"output limit exceeded: larger than {limits.max_output_bytes} bytes",
                detail={"kind": "output"},
            )
        return outcome.parse_output(text), ex.logs, ex.started_at, reused
