"""``send_event``: store an event and wake the workflows waiting for its key."""

from __future__ import annotations

import json
from typing import Any

from treadle.core import storable
from treadle.core.errors import InvalidInput
from treadle.core.job import DEFAULT_TENANT, validate_name
from treadle.workflows.db import WorkflowDb
from treadle.workflows.waker import Waker

MAX_EVENT_BYTES = 256 << 10


class EventTooLarge(InvalidInput):
    """An event payload over :data:`MAX_EVENT_BYTES` (HTTP 413)."""


def encode_payload(payload: Any) -> str:
    storable.check(payload, "event payload")  # InvalidInput naming the bad part
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event payload is not JSON-serialisable: {exc}") from None
    if len(text.encode()) > MAX_EVENT_BYTES:
        raise EventTooLarge(
            f"event payload is {len(text.encode())} bytes; the limit is {MAX_EVENT_BYTES}",
            detail={"limit": MAX_EVENT_BYTES},
        )
    return text


def send_event(
    db: WorkflowDb, waker: Waker, key: str, payload: Any = None, *,
    tenant: str = DEFAULT_TENANT,
) -> tuple[int, list[int]]:
    """Store the event; wake, in the same transaction, the jobs waiting on ``key``.

    Returns (event id, ids of the jobs woken). A job that reaches its wait later finds
    the stored event itself."""
    validate_name("event key", key)
    validate_name("tenant", tenant)
    text = encode_payload(payload)
    now = db.ts_in(db.now())
    with db.transaction() as tx:
        event_id = int(tx.run("insert_wf_event", {"tenant": tenant, "key": key,
                                                  "payload": text, "now": now})[0]["id"])
        waiting = tx.run("waiting_on_event", {"tenant": tenant, "key": key,
                                              "event_id": event_id, "now": now})
        woken = [int(r["id"]) for r in waiting if waker.wake(int(r["id"]), "event", tx)]
    return event_id, woken
