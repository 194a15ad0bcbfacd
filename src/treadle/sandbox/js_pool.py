"""The JavaScript host pool: one run per host at a time, more hosts when all are busy.

A host serves one run at a time (its watchdog charges the whole process to that run).
With a fixed set of hosts, one tenant's long run held every run queued behind it
(ADR 0102). The pool starts ``size`` hosts and, when every host is busy, starts
another one (up to ``max_size``) instead of making the caller wait; only when the pool
is at its maximum does a caller wait for a host.
"""

from __future__ import annotations

import threading

from treadle.sandbox.js_host import JsHost, mini_racer_dir


class JsHostPool:
    """Hosts are started lazily (mini-racer is an optional extra)."""

    def __init__(self, size: int, max_size: int, data_mb: int, tmp_bytes: int) -> None:
        if size < 1 or max_size < size:
            raise ValueError("need 1 <= js_hosts <= js_hosts_max")
        self.size = size
        self.max_size = max_size
        self._data_mb = data_mb
        self._tmp_bytes = tmp_bytes
        self._lock = threading.Lock()
        self._hosts: list[JsHost] = []
        self._rr = 0

    def hosts(self) -> list[JsHost]:
        """The current hosts (at least ``size``); raises ``MissingExtra`` without mini-racer."""
        with self._lock:
            if not self._hosts:
                mini_racer_dir()
                self._hosts = [self._new() for _ in range(self.size)]
            return list(self._hosts)

    def started(self) -> list[JsHost]:
        with self._lock:
            return list(self._hosts)

    def acquire(self, preferred: int | None = None) -> tuple[int, JsHost]:
        """A host whose ``lock`` the caller now holds, and its index.

        ``preferred`` (the host holding a warm context) is taken when free; otherwise any
        free host, otherwise a new host while below ``max_size``; otherwise wait.
        """
        hosts = self.hosts()
        if (
            preferred is not None
            and preferred < len(hosts)
            and hosts[preferred].lock.acquire(blocking=False)
        ):
            return preferred, hosts[preferred]
        for index, host in enumerate(hosts):
            if host.lock.acquire(blocking=False):
                return index, host
        with self._lock:
            if len(self._hosts) < self.max_size:
                host = self._new()
                host.lock.acquire()  # new, so free: ours before anyone else sees it
                self._hosts.append(host)
                return len(self._hosts) - 1, host
            if preferred is not None and preferred < len(self._hosts):
                index = preferred
            else:
                self._rr = (self._rr + 1) % len(self._hosts)
                index = self._rr
            host = self._hosts[index]
        host.lock.acquire()
        return index, host

    def get(self, index: int) -> JsHost:
        with self._lock:
            return self._hosts[index]

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = self._hosts, []
        for host in hosts:
            host.kill()

    def _new(self) -> JsHost:
        return JsHost(self._data_mb, self._tmp_bytes)
