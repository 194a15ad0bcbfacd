"""The plain batch insert sent through libpq itself, not a psycopg cursor (ADR 0032).

Most enqueues carry no guard: one ``insert_jobs`` statement in autocommit, one round
trip (a second, through a cursor, only to read the jobs of idempotency keys already
taken). Through a psycopg cursor that round trip cost ~130 µs of
producer CPU (making the cursor, adapting the parameters, the generator-driven wait);
through libpq's ``PQexecPrepared`` ~40 µs. libpq releases the GIL while it waits, as
psycopg does. The statement is prepared once per connection (again if the server has
forgotten it); the answer is three text columns. A refusal or a lost connection
becomes the psycopg exception the cursor would have raised, so the retry layer
(``retry.py``) and ``errors.translate`` see no difference.

Used only on a connection borrowed from the pool, idle, in autocommit (the pool's
connections are): nothing else runs on it meanwhile.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors, pq

INSERT_JOBS = b"treadle_insert_jobs"
INSERT_HANDOFF = b"treadle_insert_handoff"  # one job, handed to a parked worker (ADR 0034)
_TIMESTAMPTZ = 1184  # the type of $2 (now), given so it is never inferred otherwise
_UNDEFINED_STATEMENT = "26000"  # invalid_sql_statement_name: not prepared here (any more)

# Connections each statement was prepared on; a dead one drops out by itself.
_prepared: dict[bytes, weakref.WeakSet[psycopg.Connection[Any]]] = {
    INSERT_JOBS: weakref.WeakSet(), INSERT_HANDOFF: weakref.WeakSet()}


def libpq_text(named: str) -> bytes:
    """``insert_jobs`` with libpq's positional parameters: $1 the jobs, $2 now."""
    assert named.count("%(jobs)s") == 1 and "%(now)s" in named, "insert_jobs changed"
    sql = named.replace("%(jobs)s", "$1").replace("%(now)s", "$2")
    assert "%(" not in sql, "insert_jobs has a parameter this module does not send"
    return sql.encode()


def insert_plain(
    conn: psycopg.Connection[Any], sql: bytes, document: str, now: datetime,
    name: bytes = INSERT_JOBS,
) -> list[dict[str, Any]]:
    """Run the batch insert ``sql`` (:func:`libpq_text`), prepared as ``name``, on
    ``conn``: the inserted rows' id, tenant and idempotency_key (and ``parked``, for the
    hand-off statement), as a cursor with ``dict_row`` returns them."""
    params = [document.encode(), now.isoformat().encode()]
    pg = conn.pgconn
    prepared = _prepared[name]
    if conn not in prepared:
        _prepare(conn, sql, name)
    result = pg.exec_prepared(name, params)
    if result.status != pq.ExecStatus.TUPLES_OK and _sqlstate(result) == _UNDEFINED_STATEMENT:
        prepared.discard(conn)  # the server forgot it (a reset session): prepare again
        _prepare(conn, sql, name)
        result = pg.exec_prepared(name, params)
    _check(conn, result, pq.ExecStatus.TUPLES_OK)
    encoding = conn.info.encoding
    rows: list[dict[str, Any]] = []
    flagged = result.nfields > 3  # the hand-off statement's ``parked`` (ADR 0034)
    for i in range(result.ntuples):
        job_id, tenant, key = (result.get_value(i, 0), result.get_value(i, 1),
                               result.get_value(i, 2))
        assert job_id is not None and tenant is not None
        rows.append({"id": int(job_id), "tenant": bytes(tenant).decode(encoding),
                     "idempotency_key": None if key is None else bytes(key).decode(encoding)})
        if flagged:
            rows[-1]["parked"] = result.get_value(i, 3) == b"t"
    return rows


def _prepare(conn: psycopg.Connection[Any], sql: bytes, name: bytes) -> None:
    result = conn.pgconn.prepare(name, sql, [0, _TIMESTAMPTZ])
    if result.status != pq.ExecStatus.COMMAND_OK and _sqlstate(result) == "42P05":
        conn.pgconn.exec_(b"DEALLOCATE " + name)  # prepared before, then forgotten here
        result = conn.pgconn.prepare(name, sql, [0, _TIMESTAMPTZ])
    _check(conn, result, pq.ExecStatus.COMMAND_OK)
    _prepared[name].add(conn)


def _sqlstate(result: pq.abc.PGresult) -> str | None:
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    return None if state is None else state.decode()


def _check(conn: psycopg.Connection[Any], result: pq.abc.PGresult,
           expected: pq.ExecStatus) -> None:
    """Raise what psycopg would for a failed ``result``."""
    if result.status == expected:
        return
    if conn.pgconn.status != pq.ConnStatus.OK:  # the connection itself is gone
        message = conn.pgconn.get_error_message(conn.info.encoding)
        raise psycopg.OperationalError(f"consuming input failed: {message}")
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result, encoding=conn.info.encoding)
    raise psycopg.InternalError(f"unexpected result {pq.ExecStatus(result.status).name}")
