"""The program that runs *inside* a Python sandbox (bwrap + seccomp, uid 65534).

It is not imported by Treadle: its source is passed to ``python -I -S -B -c`` so that no
project file has to be visible in the sandbox. It only uses the standard library.

Protocol (both directions): 4-byte big-endian length + UTF-8 JSON object, on the pipe
fds the parent gave us as stdin/stdout; those are moved to private fds and 0/1/2 become
/dev/null so that ``print`` and raw writes of user code cannot corrupt frames (user code
can still find the fds, which is harmless: the parent treats every frame as untrusted).
"""

from __future__ import annotations

import builtins
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from typing import Any

_IN = 0
_OUT = 1
_RUN: Any = None  # the id of the run in progress; None between runs
_EMIT_MAX = 65536  # characters of JSON per env.emit (bindings.EMIT_MAX_CHARS)
_WRITE_LOCK = threading.Lock()


def _send(msg: dict[str, Any]) -> None:
    data = json.dumps(msg, separators=(",", ":")).encode()
    buf = len(data).to_bytes(4, "big") + data
    with _WRITE_LOCK:  # user threads print too: frames must not interleave
        while buf:
            n = os.write(_OUT, buf)
            buf = buf[n:]


def _read_exact(n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(_IN, n)
        if not chunk:
            os._exit(0)  # parent went away
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv() -> dict[str, Any]:
    size = int.from_bytes(_read_exact(4), "big")
    msg: dict[str, Any] = json.loads(_read_exact(size))
    return msg


def _install_exec_filter(program: bytes) -> None:
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_char_p))
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


class _HostError(Exception):
    pass


class _KV:
    def get(self, key: str) -> str | None:
        value = _call("kv.get", key)
        return None if value is None else str(value)

    def put(self, key: str, value: str) -> None:
        _call("kv.put", key, value)

    def delete(self, key: str) -> None:
        _call("kv.delete", key)


class _Env:
    """The ``env`` handed to ``handler``: only the bindings the worker was given."""

    def __init__(self, kv: bool, fetch: bool) -> None:
        if kv:
            self.kv = _KV()
        if fetch:
            self.fetch = _fetch

    def log(self, *parts: Any) -> None:
        _send({"t": "log", "line": " ".join(str(p) for p in parts)})

    def emit(self, kind: str, data: Any = None) -> None:
        """Append an item to the job's live stream (written with the worker's next batch).
        Refusals (not JSON, too big or deep, a reserved kind) raise here."""
        try:
            # Counted in characters as JavaScript's env.emit does (the frame escapes them).
            text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise _HostError("env.emit data is nested too deeply") from None
        except (TypeError, ValueError) as exc:
            raise _HostError(f"env.emit data is not JSON: {exc}") from None
        if len(text) > _EMIT_MAX:
            raise _HostError(f"env.emit data is over {_EMIT_MAX} characters of JSON")
        _call("emit", str(kind), text)


def _fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
    return _call("fetch", url, method, headers or {}, body)


def _call(op: str, *args: Any) -> Any:
    run = _RUN
    if run is None or threading.current_thread() is not threading.main_thread():
        # Calls are synchronous request/reply on one pipe: only the handler's own thread
        # may make them, and only while its run is in progress.
        raise _HostError("host calls are only possible from the handler, during its run")
    _send({"t": "call", "run": run, "op": op, "args": list(args)})
    reply = _recv()
    if not reply.get("ok"):
        raise _HostError(str(reply.get("error", "host call failed")))
    return reply.get("value")


class _LogStream:
    """``sys.stdout``/``sys.stderr`` replacement: each complete line becomes a log frame."""

    def __init__(self) -> None:
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += str(text)
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            _send({"t": "log", "line": line})
        return len(text)

    def flush(self) -> None:
        if self._buf:
            line, self._buf = self._buf, ""
            _send({"t": "log", "line": line})

    def isatty(self) -> bool:
        return False


def _set_limits(limits: dict[str, Any], first: bool) -> None:
    cpu_used = resource.getrusage(resource.RUSAGE_SELF)
    used = cpu_used.ru_utime + cpu_used.ru_stime
    soft_cpu = int(used + float(limits["cpu_seconds"])) + 1
    if first:
        mem = int(limits["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        fsize = int(limits["fsize_bytes"])
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_NPROC, (16, 16))
        # A warm (get) instance serves several runs: the hard CPU cap bounds its whole life,
        # the soft cap (SIGXCPU) is re-armed per run; the parent also samples CPU per run.
        # hard = soft + 1: SIGXCPU (classified) comes first, SIGKILL a second later.
        hard_cpu = soft_cpu + 1 if not limits.get("keep") else soft_cpu * 20
        resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, hard_cpu))
    else:
        hard_cpu = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft_cpu, hard_cpu), hard_cpu))


def _error(kind: str, exc: BaseException | None = None, message: str = "") -> dict[str, Any]:
    msg = message or (f"{type(exc).__name__}: {exc}" if exc is not None else kind)
    stack = ""
    if exc is not None:
        # Drop the host's own frame so the stack shows only user code.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        stack = "".join(traceback.format_exception(type(exc), exc, tb))
    return {"t": "result", "ok": False, "kind": kind, "message": msg[:4000], "stack": stack[-8000:]}


def _run_handler(handler: Any, payload: Any, env: _Env, max_output: int) -> dict[str, Any]:
    try:
        result = handler(payload, env)
        if hasattr(result, "__await__"):
            import asyncio

            result = asyncio.run(result)
    except RecursionError as exc:
        return _error("stack", exc)
    except MemoryError as exc:
        return _error("memory", exc)
    except _HostError as exc:
        return _error("host", exc)
    except OSError as exc:
        if exc.errno == 27:  # EFBIG: RLIMIT_FSIZE (SIGXFSZ is ignored)
            return _error("fsize", exc)
        if exc.errno == 28:  # ENOSPC: the private /tmp is full
            return _error("fsize", exc)
        if exc.errno in (1, 13, 30):  # EPERM, EACCES, EROFS: the sandbox said no
            return _error("violation", exc)
        return _error("user", exc)
    except SystemExit as exc:
        return _error("user", exc, f"handler called exit({exc.code})")
    except BaseException as exc:
        return _error("user", exc)
    try:
        text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        return _error("bad_output", exc, f"handler result is not JSON: {exc}")
    except RecursionError as exc:
        return _error("bad_output", exc)
    if len(text.encode()) > max_output:
        return _error("output", None, f"output is larger than {max_output} bytes")
    return {"t": "result", "ok": True, "output": text}


def _leftovers() -> bool:
    """True when a timer of the run is still armed (the parent checks threads itself)."""
    return any(
        signal.getitimer(which) != (0.0, 0.0)
        for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)
    )


def _finish(reply: dict[str, Any]) -> None:
    global _RUN
    _RUN = None
    if _leftovers():
        reply["dirty"] = True  # the parent discards this instance
    _send(reply)


def main() -> None:
    global _IN, _OUT, _RUN
    _IN, _OUT = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.set_inheritable(_IN, False)
    os.set_inheritable(_OUT, False)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # exceeding RLIMIT_FSIZE -> EFBIG
    # We are PID 1 of the namespace, and PID 1 ignores SIGXCPU without a handler: exit
    # the way the default action would (the parent's CPU watchdog backs this up).
    signal.signal(signal.SIGXCPU, lambda *_: os._exit(128 + signal.SIGXCPU))
    _install_exec_filter(bytes.fromhex(sys.argv[1]))
    stream = _LogStream()
    sys.stdout = sys.stderr = stream
    _send({"t": "ready"})
    msg = _recv()
    limits = msg["limits"]
    keep = bool(limits.get("keep"))
    _set_limits(limits, first=True)
    _RUN = msg.get("run")
    _send({"t": "started", "at": time.monotonic()})
    namespace: dict[str, Any] = {"__name__": "__worker__", "__builtins__": builtins}
    try:
        code = compile(msg["code"], "<worker>", "exec")
    except (SyntaxError, ValueError) as exc:
        _finish(_error("syntax", exc))
        return
    env = _Env(bool(msg.get("kv")), bool(msg.get("fetch")))
    try:
        exec(code, namespace)
    except BaseException as exc:
        kind = "memory" if isinstance(exc, MemoryError) else "init"
        _finish(_error(kind, exc))
        return
    handler = namespace.get("handler")
    if not callable(handler):
        _finish(_error("no_handler", None, "the code defines no callable `handler(input, env)`"))
        return
    payload = msg["input"]
    while True:
        reply = _run_handler(handler, json.loads(payload), env, int(limits["max_output_bytes"]))
        stream.flush()
        _finish(reply)
        if not keep:
            # Stay until the parent has read our peak memory from /proc and kills us
            # (usage accounting, ADR 0022); an exited process has no VmHWM to read.
            _recv()
            return
        if reply.get("dirty"):
            return
        msg = _recv()
        payload = msg["input"]
        _set_limits(limits, first=False)
        _RUN = msg.get("run")
        _send({"t": "started", "at": time.monotonic()})


if __name__ == "__main__":
    main()
