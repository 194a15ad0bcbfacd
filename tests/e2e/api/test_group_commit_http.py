"""POST /v1/jobs under concurrency (ADR 0019): requests share commits on the real server,
yet every client gets its own job or its own problem."""

from __future__ import annotations

import threading
from typing import Any

from tests.e2e.api.conftest import Api

CLIENTS = 16
PER_CLIENT = 25


def test_concurrent_clients_each_get_their_own_answer(api: Api) -> None:
    """Good, invalid, unknown-task, idempotent-duplicate and conflicting submissions,
    interleaved from 16 keep-alive clients; each response is checked against its request."""
    start = threading.Barrier(CLIENTS)
    answers: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}  # (client, i)
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            with api.client() as http:
                http.get("/healthz")
                start.wait()
                for i in range(PER_CLIENT):
                    kind = ("good", "good", "bad-payload", "unknown", "dup", "conflict")[i % 6]
                    headers: dict[str, str] = {}
                    body: dict[str, Any] = {"task": "add", "payload": {"a": c, "b": i}}
                    if kind == "bad-payload":
                        body["payload"] = {"a": c}  # b missing: the function cannot take it
                    elif kind == "unknown":
                        body["task"] = "no-such-task"
                    elif kind == "dup":  # every client sends this one body with one key
                        headers["Idempotency-Key"] = f"dup-{i}"
                        body["payload"] = {"a": 0, "b": i}
                    elif kind == "conflict":  # one key, each client its own body
                        headers["Idempotency-Key"] = f"conflict-{i}"
                    r = http.post("/v1/jobs", json=body, headers=headers)
                    answers[(c, i)] = (r.status_code, r.json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(answers) == CLIENTS * PER_CLIENT

    store = api.treadle.store
    by_key: dict[str, set[int]] = {}
    statuses: dict[str, list[int]] = {}
    for (c, i), (status, answer) in answers.items():
        kind = ("good", "good", "bad-payload", "unknown", "dup", "conflict")[i % 6]
        statuses.setdefault(kind, []).append(status)
        if kind == "good":
            assert status == 202
            assert answer["payload"] == {"a": c, "b": i}
            assert api.treadle.get_job(answer["id"]).payload == {"a": c, "b": i}
        elif kind == "bad-payload":
            assert status == 422 and "does not match task 'add'" in answer["detail"]
        elif kind == "unknown":
            assert status == 422 and answer["type"] == "urn:treadle:problem:unknown-task"
        elif kind == "dup":
            assert status in (200, 202) and answer["payload"] == {"a": 0, "b": i}
            by_key.setdefault(f"dup-{i}", set()).add(answer["id"])
        else:  # conflict: the first body to claim the key wins, every other one is a 409
            if status == 409:
                assert answer["type"] == "urn:treadle:problem:idempotency-conflict"
            else:
                assert status == 202 and answer["payload"] == {"a": c, "b": i}
                by_key.setdefault(f"conflict-{i}", set()).add(answer["id"])
    # One job per idempotency key, the same id for every client that sent it.
    assert all(len(ids) == 1 for ids in by_key.values())
    dup_keys = {f"dup-{i}" for i in range(PER_CLIENT) if i % 6 == 4}
    conflict_keys = {f"conflict-{i}" for i in range(PER_CLIENT) if i % 6 == 5}
    assert set(by_key) == dup_keys | conflict_keys
    # Exactly one 202 per duplicated key, the rest replays; one winner per conflicting key.
    assert statuses["dup"].count(202) == len(dup_keys)
    assert statuses["conflict"].count(202) == len(conflict_keys)
    assert statuses["conflict"].count(409) == (CLIENTS - 1) * len(conflict_keys)
    goods = len(statuses["good"])
    assert sum(store.count_by_status(tenant="tenant-a").values()) == (
        goods + len(dup_keys) + len(conflict_keys))

