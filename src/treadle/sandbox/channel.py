"""Length-prefixed JSON frames over pipes, and the parent side of one run's conversation.

Everything that comes out of a sandbox is untrusted: frames are size-capped, malformed
frames end the run, and the run's deadline bounds every wait (the caller then kills).
"""

from __future__ import annotations

import json
import logging
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from treadle.core.errors import TreadleError
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

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]
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
            msg = json.loads(raw)
        except ValueError:
            raise ChannelError("malformed frame from sandbox") from None
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

    def add_logs(self, lines: Any) -> None:
        for line in lines if isinstance(lines, list) else [lines]:
            text = str(line)
            self.log_bytes += len(text.encode("utf-8", "replace")) + 1
            if self.log_bytes > self.max_log_bytes:
                raise ChannelOverflow(f"console output exceeds {self.max_log_bytes} bytes")
            self.logs.append(text)

    def reply_to(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The reply frame for one host call. Never raises: whatever a binding does, the
        sandbox waiting for this reply gets one (an error reply when the binding failed),
        so a warm instance or a JavaScript host never falls out of step."""
        call_id = msg.get("id")
        try:
            value = self.calls.handle(msg.get("op"), msg.get("args"))
            # Check the value now: a binding returning something that is not JSON must
            # become an error reply, not an exception from Channel.send().
            json.dumps(value, allow_nan=False, separators=(",", ":"))
        except HostCallError as exc:
            return {"t": "reply", "id": call_id, "ok": False, "error": str(exc)}
        except Exception as exc:  # a buggy binding; its details stay out of the sandbox
            self.binding_errors += 1
            log.warning("binding %r failed: %r", msg.get("op"), exc)
            return {"t": "reply", "id": call_id, "ok": False,
                    "error": f"host call {msg.get('op')!r} failed in the host"}
        return {"t": "reply", "id": call_id, "ok": True, "value": value}

    def run(
        self,
        chan: Channel,
        request: dict[str, Any],
        deadline: float,
        poll: Callable[[], str | None] | None = None,
    ) -> dict[str, Any]:
        """Send ``request`` and serve frames until the result frame arrives."""
        chan.send(request)
        while True:
            msg = chan.recv(deadline, poll)
            kind = msg.get("t")
            if kind == "log":
                self.add_logs(msg.get("line", ""))
            elif kind == "call":
                chan.send(self.reply_to(msg))
            elif kind == "started":
                self.started_at = time.perf_counter()
            elif kind == "result":
                self.add_logs(msg.get("logs") or [])
                return msg
            else:
                raise ChannelError(f"unexpected frame {kind!r} from sandbox")
