"""Building a batch insert's parameter and pairing its answer with the requests (ADR 0027).

The batch goes to ``insert_jobs`` as one JSON document: an array with one object per
job. Each payload is spliced in as the JSON text the job already carries (encoded once,
when it was checked), so nothing is encoded twice; the other columns are a few scalars
for ``json.dumps``. The server answers with each inserted row's id, tenant and key, and
the jobs handed back are built from their requests (``NewJob.stored``), not decoded from
rows read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from treadle.core.job import Enqueued, Job, NewJob
from treadle.store.rows import dumps

# The columns' JSON of plain jobs (no start time, key, limit, parent, callback or trace),
# by their values: a producer repeats the same few, and encoding them again per job cost
# a sixth of building the document (ADR 0032). Bounded like the names cache.
_PLAIN_TAILS: dict[tuple[Any, ...], str] = {}
_PLAIN_TAILS_MAX = 1024


def _plain_key(nj: NewJob) -> tuple[Any, ...] | None:
    if (nj.run_at is None and nj.idempotency_key is None and nj.concurrency_key is None
            and nj.rate_key is None and nj.parent_id is None and nj.callback_url is None
            and nj.traceparent is None):
        # type() too: 1 and 1.0 (and True) are equal keys but not the same JSON.
        return (nj.tenant, nj.queue, nj.kind, nj.task, nj.priority, type(nj.priority),
                nj.max_attempts, type(nj.max_attempts), nj.timeout, type(nj.timeout),
                nj.max_crashes, type(nj.max_crashes))
    return None


def job_document(jobs: Sequence[NewJob]) -> str:
    """The ``%(jobs)s`` parameter of ``insert_jobs``: a JSON array, one object per job."""
    parts = []
    for nj in jobs:
        key = _plain_key(nj)
        tail = None if key is None else _PLAIN_TAILS.get(key)
        if tail is None:
            tail = _columns(nj)
            if key is not None and len(_PLAIN_TAILS) < _PLAIN_TAILS_MAX:
                _PLAIN_TAILS[key] = tail
        # '{"payload":<its JSON>,' + the other columns' object without its "{".
        parts.append(f'{{"payload":{nj.payload_json},{tail}')
    return f"[{','.join(parts)}]"


def _columns(nj: NewJob) -> str:
    """The job's columns but its payload, as a JSON object without its opening brace."""
    fields = {
        "tenant": nj.tenant, "queue": nj.queue, "kind": nj.kind.value, "task": nj.task,
        "priority": nj.priority, "max_attempts": nj.max_attempts, "timeout": nj.timeout,
        "max_crashes": nj.max_crashes,
        # NULL: the statement's now, the common case (no formatting at all). A time
        # goes as UTC ISO text: exact to the microsecond, any offset normalised.
        "run_at": None if nj.run_at is None else nj.run_at.astimezone(UTC).isoformat(),
    }
    # The columns most jobs leave empty are left out (absent means NULL).
    if nj.idempotency_key is not None:
        fields["idempotency_key"] = nj.idempotency_key
    if nj.concurrency_key is not None:
        fields |= {"concurrency_key": nj.concurrency_key,
                   "concurrency_limit": nj.concurrency_limit,
                   "rate_period": nj.rate_period}
    if nj.rate_key is not None:
        fields |= {"rate_key": nj.rate_key, "rate_limit": nj.rate_limit,
                   "rate_window": nj.rate_window}
    if nj.parent_id is not None:
        fields["parent_id"] = nj.parent_id
    if nj.callback_url is not None:
        fields["callback_url"] = nj.callback_url
    if nj.traceparent is not None:
        fields["traceparent"] = nj.traceparent
    return dumps(fields)[1:]


def match_inserted(
    jobs: Sequence[NewJob],
    inserted: Sequence[Mapping[str, Any]],
    existing: Mapping[tuple[str, str], Job],
    now: datetime,
    tz: tzinfo | None,
) -> list[Enqueued]:
    """Pair each requested job with its row, in request order.

    ``inserted`` are the rows ``insert_jobs`` returned (id, tenant, idempotency_key), in
    request order (ids ascend in it); a keyed job that did not insert was a duplicate of
    an existing one, found in ``existing``. Times are given in the session's time zone
    ``tz``, as a read of the row would give them.
    """
    created_at = now.astimezone(tz)
    by_key = {(r["tenant"], r["idempotency_key"]): r["id"]
              for r in inserted if r["idempotency_key"] is not None}
    unkeyed = iter([r["id"] for r in inserted if r["idempotency_key"] is None])
    out: list[Enqueued] = []
    claimed_keys: set[tuple[str, str]] = set()
    for nj in jobs:
        run_at = None if nj.run_at is None else nj.run_at.astimezone(tz)
        if nj.idempotency_key is None:
            out.append(Enqueued.new(nj, next(unkeyed), created_at, run_at))
            continue
        key = (nj.tenant, nj.idempotency_key)
        if key in by_key and key not in claimed_keys:
            claimed_keys.add(key)
            out.append(Enqueued.new(nj, by_key[key], created_at, run_at))
        else:
            out.append(Enqueued(existing[key], created=False))
    return out
