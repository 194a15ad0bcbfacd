"""One fan-out hub per server process: many listeners, one database channel.

Every SSE listener of a process subscribes here. A single thread follows all subscribed
jobs with ONE query per round (``heads``: state and stream head of every followed job),
reads new items once per changed job, and hands them to each subscriber's queue; so the
database load grows with the number of jobs followed, never with the number of
listeners. Rounds are paced by one ``LISTEN`` connection on PostgreSQL (a worker's flush
notifies ``treadle_stream``, a completion ``treadle_done``; a slow timer is the safety
net, as everywhere: ADR 0003) and by a short timer on SQLite (one poller per process).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from treadle.logs import get_logger
from treadle.store import Store
from treadle.streams.model import TRIMMED, StreamItem
from treadle.streams.repo import Head, StreamRepo

log = get_logger("treadle.streams")

Event = StreamItem | Head | None  # None: overflowed or job deleted; reconnect to resume
MAX_QUEUED = 20_000
# PostgreSQL: a claim sends no notification (adding one to every claim transaction would
# tax the hot path for the rare listener), so while a followed job is queued the hub
# looks sooner than the safety tick: 50 ms, growing by half each quiet round up to the
# safety interval, back to 50 ms on any change or new listener (ADR 0020).
QUEUED_PACE = 0.05


def fill_gap(items: list[StreamItem], after: int) -> list[StreamItem]:
    """Items after ``after``, with a ``trimmed`` marker first if the oldest were trimmed."""
    if items and items[0].seq > after + 1:
        through = items[0].seq - 1
        marker = StreamItem(through, items[0].attempt, TRIMMED,
                            {"through": through, "reason": "older items were trimmed"},
                            items[0].at)
        return [marker, *items]
    return items


@dataclass(eq=False)
class Subscription:
    job_id: int
    start: Head  # state and head when subscribed: items after start.last_seq come queued
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            if self.overflowed:
                return
            if self.queue.qsize() >= MAX_QUEUED:  # a client that does not read: cut it off
                self.overflowed = True
                event = None
            self.queue.put_nowait(event)


@dataclass
class _Followed:
    head: Head
    subs: list[Subscription] = field(default_factory=list)


@dataclass
class HubStats:
    rounds: int = 0  # heads queries
    item_reads: int = 0
    listen_connections: int = 0


class StreamHub:
    def __init__(self, store: Store, *, poll_interval: float = 0.02,
                 safety_interval: float = 0.5) -> None:
        self.repo = StreamRepo(store)
        self._store = store
        self._postgres = self.repo.backend == "postgres"
        # SQLite has no notifications: the one poller runs on a short timer.
        self._interval = safety_interval if self._postgres else poll_interval
        self._lock = threading.Lock()
        self._followed: dict[int, _Followed] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queued_pace = QUEUED_PACE
        self.stats = HubStats()

    # -- subscribers (called from a worker thread of the server) -----------------

    def subscribe(self, job_id: int, loop: asyncio.AbstractEventLoop) -> Subscription:
        """Register a listener of ``job_id`` (which must exist); blocking, one query when
        the job is not followed yet."""
        self._ensure_started()
        with self._lock:
            followed = self._followed.get(job_id)
        if followed is None:
            head = self.repo.heads([job_id]).get(job_id)
            if head is None:
                raise LookupError(job_id)
            with self._lock:
                followed = self._followed.setdefault(job_id, _Followed(head))
        with self._lock:
            sub = Subscription(job_id, followed.head, loop)
            followed.subs.append(sub)
            self._queued_pace = QUEUED_PACE
        self._wake.set()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            followed = self._followed.get(sub.job_id)
            if followed is not None and sub in followed.subs:
                followed.subs.remove(sub)
                if not followed.subs:
                    del self._followed[sub.job_id]

    def listeners(self) -> int:
        with self._lock:
            return sum(len(f.subs) for f in self._followed.values())

    # -- the one thread ------------------------------------------------------------

    def _ensure_started(self) -> None:
        with self._lock:
            if self._threads or self._stop.is_set():
                return
            bodies = [(self._run, "treadle-stream-hub")]
            if self._postgres:
                bodies.append((self._listen, "treadle-stream-listen"))
            for body, name in bodies:
                t = threading.Thread(target=body, name=name, daemon=True)
                t.start()
                self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            with self._lock:
                ids = list(self._followed)
            if not ids:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._wake.clear()
            try:
                if self._round(ids):
                    self._queued_pace = QUEUED_PACE
                backoff = 0.05
            except Exception as exc:  # an outage: listeners wait, the hub carries on
                log.warning("stream hub round failed; retrying", error=repr(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.wait(self.pace())

    def pace(self) -> float:
        """Seconds until the next round (see ``QUEUED_PACE``)."""
        if not self._postgres:
            return self._interval
        with self._lock:
            queued = any(f.head.status == "queued" for f in self._followed.values())
            if not queued:
                return self._interval
            pace = self._queued_pace
            self._queued_pace = min(pace * 1.5, self._interval)
        return pace

    def _round(self, ids: list[int]) -> bool:
        """One heads query for all followed jobs; True when anything changed."""
        changed = False
        heads = self.repo.heads(ids)
        self.stats.rounds += 1
        for job_id in ids:
            with self._lock:
                followed = self._followed.get(job_id)
            head = heads.get(job_id)
            if followed is None:
                continue  # unsubscribed meanwhile
            if head is None:  # deleted (retention): end its listeners; a reconnect gets 404
                with self._lock:
                    gone = self._followed.pop(job_id, None)
                for sub in gone.subs if gone is not None else []:
                    self._post(sub, [None])
                continue
            items: list[StreamItem] = []
            cursor = followed.head.last_seq
            while cursor < head.last_seq:
                page = self.repo.read(job_id, cursor, 1000)
                self.stats.item_reads += 1
                if not page:
                    break
                items.extend(fill_gap(page, cursor))
                cursor = page[-1].seq
            state_changed = (head.status, head.attempt) != (followed.head.status,
                                                            followed.head.attempt)
            if not items and not state_changed:
                continue
            changed = True
            new_head = Head(job_id, head.status, head.attempt, max(cursor,
                            followed.head.last_seq), head.trimmed_through)
            with self._lock:
                followed.head = new_head
                subs = list(followed.subs)
            events: list[Event] = [*items, new_head] if state_changed else list(items)
            for sub in subs:
                self._post(sub, events)  # one hand-over per listener per round
        return changed

    def _post(self, sub: Subscription, events: list[Event]) -> None:
        try:
            sub.loop.call_soon_threadsafe(sub._deliver, events)
        except RuntimeError:  # its event loop is closed: the listener is gone
            self.unsubscribe(sub)

    def _listen(self) -> None:
        import psycopg

        from treadle.store.postgres.connect import connect_kwargs

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._store.url, autocommit=True,
                                     **connect_kwargs()) as conn:
                    conn.execute("LISTEN treadle_stream")
                    conn.execute("LISTEN treadle_done")
                    self.stats.listen_connections += 1
                    try:
                        backoff = 0.1
                        self._wake.set()  # something may have happened while away
                        while not self._stop.is_set():
                            for _ in conn.notifies(timeout=1.0):
                                self._wake.set()
                    finally:
                        self.stats.listen_connections -= 1
            except psycopg.Error:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


_hubs: WeakKeyDictionary[Any, StreamHub] = WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub_for(treadle: Any) -> StreamHub:
    """The process's hub for this app (created on first use, closed with the app)."""
    with _hubs_lock:
        hub = _hubs.get(treadle)
        if hub is None:
            hub = _hubs[treadle] = StreamHub(treadle.store)
            treadle.on_close(hub.close)
        return hub
