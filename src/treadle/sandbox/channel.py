"""Length-prefixed JSON frames over pipes, and the parent side of one run's conversation.

Everything that comes out of a sandbox is untrusted: frames are size-capped, malformed
frames end the run, and the run's deadline bounds every wait, including writes to a
sandbox that stopped reading and host calls the parent serves (the caller then kills).

Every run has its own id, sent with the request; the sandbox host tags each host call
with the run it belongs to, and the parent only serves calls of the run it is serving
(ADR 0102): a call left over from an earlier run is refused, never answered with
another run's bindings.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from treadle.core.errors import TreadleError
from treadle.sandbox import wirejson
from treadle.sandbox.bindings import HostCallError, HostCalls

log = logging.getLogger("treadle.sandbox")


class ChannelError(Exception):
    """The sandbox side of a channel misbehaved or went away."""


class ChannelClosed(ChannelError):
    """End of file: the sandbox process exited or was killed."""


class ChannelTimeout(ChannelError):
    """The run's wall-clock deadline passed."""


class ChannelOverflow(ChannelError):
    """A frame or the accumulated logs exceeded their limit."""


class WatchdogTripped(ChannelError):
    """The poll function reported an overrun (memory, CPU) while waiting."""


# Writes without a run deadline (greetings, drops) still never wait longer than this.
SEND_TIMEOUT = 5.0
_RUN_IDS = itertools.count(1)
# Host calls run on these threads so that the run's deadline bounds them: a binding that
# hangs (a slow server behind env.fetch) is abandoned at the deadline, the sandbox killed.
# Long-lived threads, because stores keep per-thread connections.
_HOST_CALLS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="treadle-host-call")


def next_run_id() -> int:
    return next(_RUN_IDS)


def attach_logs(err: TreadleError, logs: list[str]) -> TreadleError:
    """Give a failed run's error the console output written before it failed.

    The error then carries ``logs`` (a list of lines) the way a :class:`RunResult` does,
    so callers (the ``code`` job executor) can record it with the failed attempt.
    """
    if getattr(err, "logs", None) is None:
        setattr(err, "logs", list(logs))  # noqa: B010
    return err


def encode(msg: dict[str, Any]) -> bytes:
    data = json.dumps(msg, separators=(",", ":")).encode()
    return len(data).to_bytes(4, "big") + data


class Channel:
    """One pipe pair to a sandbox process; not thread-safe (one run at a time)."""

    def __init__(self, rfd: int, wfd: int, max_frame: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self.max_frame = max_frame
        self._buf = bytearray()
        os.set_blocking(rfd, False)
        # A sandbox that stops reading must not block us: writes wait with a deadline.
        os.set_blocking(wfd, False)

    def send(self, msg: dict[str, Any], deadline: float | None = None) -> None:
        """Write one frame, waiting for the pipe at most until ``deadline``."""
        if deadline is None:
            deadline = time.monotonic() + SEND_TIMEOUT
        view = memoryview(encode(msg))
        try:
            while view:
                try:
                    n = os.write(self.wfd, view)
                except BlockingIOError:
                    n = 0
                view = view[n:]
                if not view:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChannelTimeout("deadline passed while writing to the sandbox")
                select.select([], [self.wfd], [], remaining)
        except (BrokenPipeError, OSError) as exc:
            raise ChannelClosed(f"sandbox pipe closed: {exc}") from None

    def recv(
        self,
        deadline: float,
        poll: Callable[[], str | None] | None = None,
        poll_interval: float = 0.01,
    ) -> dict[str, Any]:
        """Next frame, waiting at most until ``deadline`` (``time.monotonic``)."""
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelTimeout("deadline passed")
            wait = remaining if poll is None else min(remaining, poll_interval)
            ready, _, _ = select.select([self.rfd], [], [], wait)
            if not ready:
                if poll is not None:
                    reason = poll()
                    if reason:
                        raise WatchdogTripped(reason)
                continue
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ChannelClosed(str(exc)) from None
            if not chunk:
                raise ChannelClosed("sandbox closed its pipe")
            self._buf += chunk

    def _take(self) -> dict[str, Any] | None:
        if len(self._buf) < 4:
            return None
        size = int.from_bytes(self._buf[:4], "big")
        if size > self.max_frame:
            raise ChannelOverflow(f"frame of {size} bytes exceeds {self.max_frame}")
        if len(self._buf) < 4 + size:
            return None
        raw = bytes(self._buf[4 : 4 + size])
        del self._buf[: 4 + size]
        try:
            msg = wirejson.loads(raw)
        except wirejson.UnsafeJSON as exc:
            raise ChannelError(f"malformed frame from sandbox ({exc})") from None
        if not isinstance(msg, dict):
            raise ChannelError("malformed frame from sandbox")
        return msg


@dataclass
class Exchange:
    """The state of one run's conversation, filled in as frames arrive."""

    calls: HostCalls
    max_log_bytes: int
    logs: list[str] = field(default_factory=list)
    log_bytes: int = 0
    started_at: float | None = None
    binding_errors: int = 0
    run_id: int = field(default_factory=next_run_id)
    stale_calls: int = 0  # call frames of another run: refused (the instance is discarded)
    deadline: float | None = None

    def add_logs(self, lines: Any) -> None:
        for line in lines if isinstance(lines, list) else [lines]:
            text = str(line)
            self.log_bytes += len(text.encode("utf-8", "replace")) + 1
            if self.log_bytes > self.max_log_bytes:
                raise ChannelOverflow(f"console output exceeds {self.max_log_bytes} bytes")
            self.logs.append(text)

    def reply_to(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The reply frame for one host call. Whatever a binding does, the sandbox waiting
        for this reply gets one (an error reply when the binding failed), so a warm
        instance or a JavaScript host never falls out of step. Only the run's deadline
        passing during the call raises (``ChannelTimeout``): the caller then kills."""
        call_id = msg.get("id")
        if msg.get("run") != self.run_id:
            # Bindings belong to a run, never to the connection: a call of a finished run
            # (or a forged one) gets no answer from this run's bindings.
            self.stale_calls += 1
            return {"t": "reply", "id": call_id, "run": msg.get("run"), "ok": False,
                    "error": "host call refused: its run has finished"}
        try:
            value = self._call(msg.get("op"), msg.get("args"))
            # Check the value now: a binding returning something that is not JSON must
            # become an error reply, not an exception from Channel.send().
            json.dumps(value, allow_nan=False, separators=(",", ":"))
        except ChannelTimeout:
            raise  # the run is over: the caller kills the sandbox
        except HostCallError as exc:
            return {"t": "reply", "id": call_id, "run": self.run_id, "ok": False,
                    "error": str(exc)}
        except Exception as exc:  # a buggy binding; its details stay out of the sandbox
            self.binding_errors += 1
            log.warning("binding %r failed: %r", msg.get("op"), exc)
            return {"t": "reply", "id": call_id, "run": self.run_id, "ok": False,
                    "error": f"host call {msg.get('op')!r} failed in the host"}
        return {"t": "reply", "id": call_id, "run": self.run_id, "ok": True, "value": value}

    def _call(self, op: Any, args: Any) -> Any:
        """One binding call, abandoned (``ChannelTimeout``) when the run's deadline passes."""
        if self.deadline is None:
            return self.calls.handle(op, args)
        future = _HOST_CALLS.submit(self.calls.handle, op, args)
        try:
            return future.result(timeout=max(0.0, self.deadline - time.monotonic()))
        except FutureTimeout:
            future.cancel()
            raise ChannelTimeout("deadline passed during a host call") from None

    def run(
        self,
        chan: Channel,
        request: dict[str, Any],
        deadline: float,
        poll: Callable[[], str | None] | None = None,
    ) -> dict[str, Any]:
        """Send ``request`` (tagged with this run's id) and serve frames until the result.

        Every wait, write and host call is bounded by ``deadline`` (``ChannelTimeout``).
        """
        self.deadline = deadline
        chan.send({**request, "run": self.run_id}, deadline)
        while True:
            msg = chan.recv(deadline, poll)
            kind = msg.get("t")
            if kind == "log":
                self.add_logs(msg.get("line", ""))
            elif kind == "call":
                chan.send(self.reply_to(msg), deadline)
            elif kind == "started":
                self.started_at = time.perf_counter()
            elif kind == "result":
                self.add_logs(msg.get("logs") or [])
                return msg
            else:
                raise ChannelError(f"unexpected frame {kind!r} from sandbox")
