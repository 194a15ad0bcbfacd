"""The JavaScript sandbox host: a Python process (inside bwrap) holding V8 isolates.

Not imported by Treadle: its source is passed to ``python -I -S -B -c``. Each context is a
separate mini-racer isolate. ``load`` runs take a pre-made fresh isolate and discard it
afterwards; ``get`` runs reuse the isolate cached under the key the parent chose (the
parent keys by tenant and worker id, so tenants never share one). The parent's watchdog
kills this whole process on wall-time, CPU or memory overrun; there is no in-process
timeout to trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sys
import threading
from typing import Any

_IN = 0
_OUT = 1
_WRITE_LOCK = threading.Lock()
# Memory a run may use outside its isolate heap (the parent's watchdog allows as much).
_RUN_SLACK = 64 << 20

PRELUDE = r"""
(function (hostFn, allowWasm, hasKv, hasFetch) {
  'use strict';
  const g = globalThis;
  // Work that could run after the handler returned (timers, Atomics.waitAsync) makes the
  // context unfit for reuse: the host discards it instead of keeping it warm.
  const timers = g.__timer_manager;
  const waits = {n: 0};
  if (!allowWasm) {
    // FinalizationRegistry callbacks run whenever the GC decides, between runs too.
    for (const name of ['WebAssembly', 'SharedArrayBuffer', 'Atomics', 'FinalizationRegistry']) {
      Object.defineProperty(g, name, {value: undefined, writable: false, configurable: false});
    }
  } else if (g.Atomics && typeof g.Atomics.waitAsync === 'function') {
    const waitAsync = g.Atomics.waitAsync;
    const settle = () => { waits.n -= 1; };
    Object.defineProperty(g.Atomics, 'waitAsync', {writable: false, configurable: false,
      value: function (...a) {
        const r = waitAsync.apply(g.Atomics, a);
        if (r && r.async) { waits.n += 1; r.value.then(settle, settle); }
        return r;
      }});
  }
  const busy = () => {
    let n = waits.n;
    try { if (timers && timers.pending) n += timers.pending.size; } catch (e) { n += 1; }
    return n;
  };
  const stringify = JSON.stringify, parse = JSON.parse, S = String;
  const push = Function.prototype.call.bind(Array.prototype.push);
  const state = {logs: [], chars: 0, maxLog: 0, overflow: false};
  const fmt = (args) => {
    const parts = [];
    for (const a of args) {
      if (typeof a === 'string') { push(parts, a); continue; }
      let s; try { s = stringify(a); } catch (e) { s = undefined; }
      push(parts, s === undefined ? S(a) : s);
    }
    return parts.join(' ');
  };
  const log = (...args) => {
    const line = fmt(args);
    if (state.chars + line.length + 1 > state.maxLog) {
      state.overflow = true;
      throw new RangeError('log limit exceeded');
    }
    state.chars += line.length + 1;
    push(state.logs, line);
  };
  const con = {};
  for (const k of ['log', 'info', 'warn', 'error', 'debug', 'trace']) con[k] = log;
  Object.defineProperty(g, 'console', {value: Object.freeze(con), writable: false,
                                       configurable: false});
  const call = async (op, ...args) => {
    const reply = parse(await hostFn(stringify({op, args})));
    if (!reply.ok) throw new Error(reply.error);
    return reply.value;
  };
  const env = {log};
  // env.emit(kind, data): an item on the job's live stream. The data travels as JSON text
  // of at most EMIT_MAX characters (bindings.EMIT_MAX_CHARS); the host checks the rest.
  // It returns a promise: await it, since a call not yet sent when the run ends is
  // refused (host calls belong to runs, ADR 0102).
  const EMIT_MAX = 65536;
  env.emit = async (kind, data) => {
    let text;
    try { text = stringify(data === undefined ? null : data); }
    catch (e) { throw new Error('env.emit data is not JSON: ' + S(e && e.message)); }
    if (typeof text !== 'string') throw new Error('env.emit data is not JSON');
    if (text.length > EMIT_MAX)
      throw new Error('env.emit data is over ' + EMIT_MAX + ' characters of JSON');
    return call('emit', S(kind), text);
  };
  if (hasKv) env.kv = Object.freeze({
    get: (k) => call('kv.get', S(k)),
    put: (k, v) => call('kv.put', S(k), S(v)),
    delete: (k) => call('kv.delete', S(k)),
  });
  if (hasFetch) env.fetch = async (url, init) => {
    init = init || {};
    const r = await call('fetch', S(url), S(init.method || 'GET'), init.headers || {},
                         init.body == null ? null : S(init.body));
    return Object.freeze({status: r.status, ok: r.status >= 200 && r.status < 300,
                          headers: r.headers, text: async () => r.body,
                          json: async () => parse(r.body)});
  };
  Object.freeze(env);
  const classify = (e) => {
    let name = '', message = '', stack = '';
    try { name = S(e && e.name); message = S(e && e.message !== undefined ? e.message : e);
          stack = S(e && e.stack || ''); } catch (x) { message = 'unprintable exception'; }
    if (state.overflow) return {kind: 'log', message: 'console output over the limit'};
    if (name === 'RangeError' && message.indexOf('call stack') >= 0)
      return {kind: 'stack', message};
    if (name === 'RangeError' && /[Aa]rray buffer|array length|Invalid typed array/.test(message))
      return {kind: 'memory', message};
    const full = name && message.indexOf(name) !== 0 ? name + ': ' + message : message;
    return {kind: 'user', message: full, stack};
  };
  async function run(handler, inputJson, maxOut, maxLog) {
    state.logs = []; state.chars = 0; state.maxLog = maxLog; state.overflow = false;
    const done = (o) => { o.logs = state.logs; return o; };
    if (typeof handler !== 'function')
      return done({ok: false, kind: 'no_handler',
                   message: 'the code defines no function `handler(input, env)`'});
    let value;
    try { value = await handler(parse(inputJson), env); }
    catch (e) { const c = classify(e); c.ok = false; return done(c); }
    if (state.overflow)
      return done({ok: false, kind: 'log', message: 'console output over the limit'});
    let out;
    try { out = stringify(value === undefined ? null : value); }
    catch (e) {
      return done({ok: false, kind: 'bad_output', message: 'result is not JSON: ' + S(e)});
    }
    if (typeof out !== 'string')
      return done({ok: false, kind: 'bad_output', message: 'handler result is not JSON'});
    if (out.length > maxOut)
      return done({ok: false, kind: 'output', message: 'output larger than ' + maxOut + ' bytes'});
    return done({ok: true, output: out});
  }
  // Fast path: awaiting a promise through mini-racer costs several thread hops (~1 ms).
  // `start` runs the handler synchronously; V8 drains microtasks when that call returns,
  // so `take` (a second plain call) already finds the result of any handler that did not
  // wait on a host call or timer. Otherwise the host awaits `wait`, the slow path.
  const slot = {promise: null, result: null};
  const finish = (o) => { o.busy = busy(); return stringify(o); };
  const start = (handler, inputJson, maxOut, maxLog) => {
    slot.result = null;
    slot.promise = run(handler, inputJson, maxOut, maxLog);
    slot.promise.then((o) => { slot.result = o; });
    return null;
  };
  const take = () => slot.result === null ? null : finish(slot.result);
  const wait = async () => finish(await slot.promise);
  return [start, take, wait];
})
"""


def _send(msg: dict[str, Any]) -> None:
    data = json.dumps(msg, separators=(",", ":")).encode()
    buf = len(data).to_bytes(4, "big") + data
    with _WRITE_LOCK:
        while buf:
            buf = buf[os.write(_OUT, buf) :]


def _read_exact(n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(_IN, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


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


class Ctx:
    """One isolate and what the host knows about it.

    ``run`` is the id of the run executing in it (None between runs): host calls are
    tagged with it, and a call made while no run is active (left over from a finished
    run) is refused here and makes the context ``dirty``, so it is never reused.
    """

    def __init__(self) -> None:
        self.mr: Any = None
        self.fn: Any = None
        self.stack = contextlib.AsyncExitStack()
        self.runner: Any = None
        self.run: Any = None
        self.pending: set[int] = set()
        self.dirty = False
        self.key: str | None = None


class Host:
    def __init__(self, loop: asyncio.AbstractEventLoop, data_limit: int) -> None:
        from py_mini_racer import MiniRacer

        self.MiniRacer = MiniRacer
        self.loop = loop
        self.data_limit = data_limit
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[int, asyncio.Future[str]] = {}
        self.next_id = 0
        self.contexts: dict[str, Ctx] = {}  # insertion order = least recently used first
        self.spare: Ctx | None = None

    def reader(self) -> None:
        """Thread: route parent frames to pending host calls or to the request queue."""
        while True:
            head = _read_exact(4)
            body = _read_exact(int.from_bytes(head, "big")) if head else None
            if body is None:
                os._exit(0)  # the parent went away
            msg = json.loads(body)
            self.loop.call_soon_threadsafe(self._route, msg)

    def _route(self, msg: dict[str, Any]) -> None:
        if msg.get("t") == "reply":
            fut = self.replies.pop(int(msg.get("id", -1)), None)
            if fut is not None and not fut.done():
                fut.set_result(
                    json.dumps(
                        {"ok": msg.get("ok"), "value": msg.get("value"), "error": msg.get("error")}
                    )
                )
        else:
            self.requests.put_nowait(msg)

    async def host_call(self, ctx: Ctx, request: Any) -> str:
        if ctx.run is None:
            # Left over from a finished run: never sent to the parent, and the context
            # (whose code keeps working after its run) is dropped.
            ctx.dirty = True
            if ctx.key is not None and self.contexts.get(ctx.key) is ctx:
                del self.contexts[ctx.key]
                self.loop.create_task(self.close(ctx))
            raise RuntimeError("host call refused: its run has finished")
        self.next_id += 1
        call_id = self.next_id
        fut: asyncio.Future[str] = self.loop.create_future()
        self.replies[call_id] = fut
        ctx.pending.add(call_id)
        try:
            req = json.loads(str(request))
            _send({"t": "call", "id": call_id, "run": ctx.run, "op": req.get("op"),
                   "args": req.get("args")})
            return await fut
        finally:
            ctx.pending.discard(call_id)
            self.replies.pop(call_id, None)

    async def new_context(self) -> Ctx:
        ctx = Ctx()
        ctx.mr = self.MiniRacer()

        async def call(request: Any) -> str:
            return await self.host_call(ctx, request)

        ctx.fn = await ctx.stack.enter_async_context(ctx.mr.wrap_py_function(call))
        return ctx

    async def close(self, ctx: Ctx) -> None:
        ctx.dirty = True
        for call_id in list(ctx.pending):
            fut = self.replies.pop(call_id, None)
            if fut is not None and not fut.done():
                fut.cancel()
        with contextlib.suppress(Exception):
            await ctx.stack.aclose()
        with contextlib.suppress(Exception):
            ctx.mr.close()

    async def make_room(self, heap: int, keep: str | None) -> None:
        """Drop least recently used warm contexts until a run of ``heap`` bytes fits.

        Memory held by one tenant's warm contexts must not make another tenant's run
        fail: warm state is a cache, a run's headroom is not. The measure is what
        RLIMIT_DATA counts (the data segment, V8's reservations included), and a run
        may add its heap plus the parent watchdog's slack for memory outside the heap.
        """
        need = heap + _RUN_SLACK
        while self.contexts and _data_size() + need > self.data_limit:
            victim = next((k for k in self.contexts if k != keep), None)
            if victim is None:
                return
            await self.close(self.contexts.pop(victim))

    async def serve(self) -> None:
        self.spare = await self.new_context()
        _send({"t": "ready"})
        while True:
            msg = await self.requests.get()
            if msg.get("t") == "drop":
                ctx = self.contexts.pop(str(msg.get("key")), None)
                if ctx is not None:
                    await self.close(ctx)
            elif msg.get("t") == "run":
                await self.run(msg)
                if self.spare is None:
                    self.spare = await self.new_context()

    async def run(self, msg: dict[str, Any]) -> None:
        from py_mini_racer import JSEvalException, JSOOMException, JSParseException

        key = str(msg["key"]) if msg.get("key") else None
        limits = msg["limits"]
        heap = int(limits["memory_mb"]) << 20
        cached = self.contexts.pop(key, None) if key else None
        reused = cached is not None and not cached.dirty
        if cached is not None and not reused:
            await self.close(cached)
            cached = None
        await self.make_room(heap, key)
        if cached is not None:
            ctx = cached
        else:
            if self.spare is None:
                self.spare = await self.new_context()
            ctx, self.spare = self.spare, None
        ctx.key = key
        ctx.run = msg.get("run")
        _send({"t": "started", "reused": reused})
        keep = False
        try:
            mr = ctx.mr
            if getattr(mr, "_treadle_heap", None) != heap:  # skip a V8 thread hop when warm
                mr.set_hard_memory_limit(heap)
                mr._treadle_heap = heap
            if ctx.runner is None:
                install = mr.eval(PRELUDE)
                fns = install(
                    ctx.fn, bool(msg.get("allow_wasm")), bool(msg.get("kv")),
                    bool(msg.get("fetch")),
                )
                mr.eval(str(msg["code"]))
                handler = mr.eval("typeof handler === 'function' ? handler : null")
                ctx.runner = (fns[0], fns[1], fns[2], handler)
            start, take, wait, handler = ctx.runner
            start(
                handler,
                str(msg["input"]),
                int(limits["max_output_bytes"]),
                int(limits["max_log_bytes"]),
            )
            text = take()
            if text is None:  # the handler waits on a host call or a timer
                text = await wait()
            ctx.run = None  # from here on, calls of this context are refused
            result = json.loads(text)
            result["t"] = "result"
            # Reuse only a context with nothing left running: no host call in flight,
            # no timer armed, no call refused after its run.
            idle = not ctx.pending and not result.pop("busy", 0) and not ctx.dirty
            keep = bool(key) and idle and result.get("kind") in (None, "user", "output",
                                                                 "bad_output")
        except JSOOMException as exc:
            result = {"t": "result", "ok": False, "kind": "memory", "message": str(exc)}
        except JSParseException as exc:
            result = {"t": "result", "ok": False, "kind": "syntax", "message": str(exc)}
        except JSEvalException as exc:
            text = str(exc)
            kind = "stack" if "Maximum call stack" in text else "init"
            with contextlib.suppress(Exception):
                if ctx.mr.was_hard_memory_limit_reached():
                    kind = "memory"
            result = {
                "t": "result",
                "ok": False,
                "kind": kind,
                "message": text[:4000],
                "stack": text,
            }
        ctx.run = None
        if key and keep:
            self.contexts[key] = ctx
        else:
            await self.close(ctx)
        result["reused"] = reused
        _send(result)


def _data_size() -> int:
    """This process's data segment in bytes (what RLIMIT_DATA limits)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[5]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    global _IN, _OUT
    _IN, _OUT = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # ArrayBuffer and wasm memory live outside the isolate heap: RLIMIT_DATA bounds them
    # (RLIMIT_AS would not leave V8 room for its virtual-memory reservations).
    data = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    sys.path.insert(0, sys.argv[3])
    import py_mini_racer  # noqa: F401  (load V8 before the exec filter closes the door)

    if sys.argv[1]:
        _install_exec_filter(bytes.fromhex(sys.argv[1]))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    host = Host(loop, data)
    threading.Thread(target=host.reader, daemon=True).start()
    loop.run_until_complete(host.serve())


if __name__ == "__main__":
    main()
