"""Live job streams over a real server (ADR 0011), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from tests.e2e.api.conftest import Api, api_worker
from tests.support.aio import run_async
from tests.support.sse import Sse, parse
from treadle.context import JobContext
from treadle.streams.hub import hub_for

N = 1000


def _register(api: Api, gate: threading.Event) -> None:
    @api.treadle.task(name="chatter", retries=0, pass_context=True, timeout=60)
    def chatter(n: int, hold: int, ctx: JobContext) -> int:
        for i in range(n):
            if i == hold:
                gate.wait(30)
            ctx.emit("token", {"i": i})
        ctx.progress(n, n)
        return n


def _items(events: list[Sse]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event == "item"]


def _read(client: httpx.Client, job_id: int, *, stop_after: int | None = None,
          last_id: str | None = None) -> list[Sse]:
    headers = {"Last-Event-ID": last_id} if last_id is not None else {}
    out: list[Sse] = []
    with client.stream("GET", f"/v1/jobs/{job_id}/stream", headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for ev in parse(r.iter_lines()):
            out.append(ev)
            if ev.event == "end":
                break
            if stop_after is not None and ev.event == "item" and ev.data["seq"] >= stop_after:
                break
    return out


def test_items_arrive_in_order_and_survive_a_reconnect(api: Api) -> None:
    gate = threading.Event()
    _register(api, gate)
    with api.client() as client, api_worker(api.treadle):
        job_id = client.post("/v1/jobs", json={"task": "chatter",
                                               "payload": {"n": N, "hold": 600}}).json()["id"]
        first = _read(client, job_id, stop_after=300)  # live: the job is held at 600
        assert first[0].event == "state"
        last_id = first[-1].id
        assert last_id == "300"
        gate.set()
        rest = _read(client, job_id, last_id=last_id)
    items = _items(first) + _items(rest)
    tokens = [i["data"]["i"] for i in items if i["kind"] == "token"]
    assert tokens == list(range(N))
    assert [i["seq"] for i in items] == list(range(1, N + 2))  # + the progress item
    assert items[-1]["kind"] == "progress" and items[-1]["data"] == {"done": N, "total": N}
    assert all(i["attempt"] == 1 for i in items)
    assert rest[-1].event == "end" and rest[-1].data["status"] == "succeeded"


def test_a_late_subscriber_replays_everything(api: Api) -> None:
    gate = threading.Event()
    gate.set()
    _register(api, gate)
    with api.client() as client:
        job_id = client.post("/v1/jobs", json={"task": "chatter",
                                               "payload": {"n": 50, "hold": -1}}).json()["id"]
        with api_worker(api.treadle):
            while client.get(f"/v1/jobs/{job_id}").json()["status"] != "succeeded":
                threading.Event().wait(0.05)
        events = _read(client, job_id)
        assert events[0].event == "state"
        assert [i["data"]["i"] for i in _items(events)[:-1]] == list(range(50))
        assert events[-1].event == "end" and events[-1].data["result"] == 50
        resumed = _read(client, job_id, last_id="45")
        assert [i["seq"] for i in _items(resumed)] == [46, 47, 48, 49, 50, 51]
        # tenant scoping: another tenant's job is not found
        with api.client("b") as other:
            assert other.get(f"/v1/jobs/{job_id}/stream").status_code == 404
        assert client.get(f"/v1/jobs/{job_id}/stream",
                          headers={"Last-Event-ID": "x"}).status_code == 422


def test_many_listeners_cost_one_channel(api: Api) -> None:
    listeners = 40
    gate = threading.Event()
    _register(api, gate)
    with api.client() as client:
        job_id = client.post("/v1/jobs", json={"task": "chatter",
                                               "payload": {"n": 200, "hold": 100}}).json()["id"]
    hub = hub_for(api.treadle)

    async def listen(ac: httpx.AsyncClient, ready: asyncio.Event, counter: list[int]) -> int:
        n = 0
        async with ac.stream("GET", f"/v1/jobs/{job_id}/stream") as r:
            lines: list[str] = []
            async for line in r.aiter_lines():
                if line.startswith("event: state") and not ready.is_set():
                    counter[0] += 1
                    if counter[0] == listeners:
                        ready.set()
                lines.append(line)
                if line.startswith("event: end"):
                    break
            n = len([e for e in parse([*lines, "", ""]) if e.event == "item"])
        return n

    async def main() -> list[int]:
        ready, counter = asyncio.Event(), [0]
        headers = {"Authorization": f"Bearer {api.keys['a']}"}
        limits = httpx.Limits(max_connections=listeners + 5)
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60,
                                     limits=limits) as ac:
            tasks = [asyncio.create_task(listen(ac, ready, counter)) for _ in range(listeners)]
            await asyncio.wait_for(ready.wait(), 30)
            assert hub.listeners() == listeners
            rounds_before = hub.stats.rounds
            gate.set()
            with api_worker(api.treadle):
                counts = await asyncio.gather(*tasks)
            # One job followed: each round is one query for all listeners, and each
            # change one read of new items, shared by every listener.
            assert hub.stats.item_reads <= hub.stats.rounds
            assert hub.stats.rounds - rounds_before < 2000
            return counts

    counts = run_async(main())
    assert counts == [201] * listeners
    assert hub.stats.listen_connections <= 1
    assert hub.listeners() == 0
