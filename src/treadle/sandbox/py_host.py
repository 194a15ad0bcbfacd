"""Python sandboxes: one bwrap'd interpreter per instance, driven over a pipe."""

from __future__ import annotations

import subprocess
import time
from functools import cache
from importlib import resources
from typing import Any

from treadle.core.errors import ResourceExhausted, SandboxViolation, TreadleError
from treadle.sandbox import outcome, process, seccomp
from treadle.sandbox.bindings import HostCalls
from treadle.sandbox.channel import (
    Channel,
    ChannelClosed,
    ChannelError,
    ChannelOverflow,
    ChannelTimeout,
    Exchange,
    attach_logs,
)
from treadle.sandbox.limits import Limits
from treadle.sandbox.spec import WorkerSpec

READY_TIMEOUT = 10.0


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
    ) -> tuple[Any, list[str], float | None]:
        """Run the handler once; returns (output, logs, started_at). Raises classified errors.

        On any failure the instance is killed (a warm one is never reused after an error
        that could have left it in a bad state, except ordinary user exceptions).
        """
        self.wait_ready()
        self.chan.max_frame = limits.max_output_bytes + limits.max_log_bytes + (64 << 10)
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
            return self._exchange(ex, request, limits, calls, keep)
        except TreadleError as err:
            # Console output written before the failure belongs to the run's record.
            attach_logs(err, ex.logs)
            raise

    def _exchange(
        self, ex: Exchange, request: dict[str, Any], limits: Limits, calls: HostCalls,
        keep: bool,
    ) -> tuple[Any, list[str], float | None]:
        deadline = time.monotonic() + limits.timeout
        self.last_used = time.monotonic()
        try:
            reply = ex.run(self.chan, request, deadline)
        except ChannelTimeout:
            self.kill()
            raise outcome.timeout(limits.timeout) from None
        except ChannelOverflow as exc:
            self.kill()
            raise ResourceExhausted(str(exc), detail={"kind": "output"}) from None
        except ChannelClosed:
            self.kill()
            raise outcome.from_exit(self.proc.returncode, "python") from None
        except ChannelError as exc:
            self.kill()
            raise SandboxViolation(f"protocol violation: {exc}") from None
        self.initialised = True
        if not reply.get("ok"):
            err = outcome.from_reply(reply, calls.limit_hit, limits.max_host_calls)
            if reply.get("kind") not in ("user", "host") or not keep:
                self.kill()
            raise err
        if calls.limit_hit:
            self.kill()
            raise outcome.from_reply({"kind": "host"}, True, limits.max_host_calls)
        import json

        try:
            output = json.loads(str(reply.get("output")))
        except ValueError:
            self.kill()
            raise SandboxViolation("protocol violation: result is not JSON") from None
        if not keep:
            self.kill()
        return output, ex.logs, ex.started_at

    def kill(self) -> None:
        if not self.dead:
            self.dead = True
            process.kill(self.proc)
