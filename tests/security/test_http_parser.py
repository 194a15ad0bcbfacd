"""The API's HTTP parser (httptools/llhttp, ADR 0026) on malformed request heads.

Control bytes in a header value, which h11 passed to the app, are refused by the parser
itself: a 400 problem document, the connection closed, nothing written. A request head
larger than h11's bound (16 KiB) gets a 431 without being buffered whole.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.api.conftest import ADMIN_KEY
from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.api.protocol import MAX_HEAD_BYTES, ApiHttpToolsProtocol
from treadle.api.server import http_protocol
from treadle.app import Treadle
from treadle.core.errors import ConfigurationError

BODY = json.dumps({"task": "noop"}).encode()


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[int, Treadle]]:
    treadle = build_app(db_url)
    treadle.migrate()
    port = free_port()
    server = start_in_thread(treadle, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY))
    assert server.config.http is ApiHttpToolsProtocol  # the default when installed
    try:
        yield port, treadle
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def _request(extra: bytes, body: bytes = BODY) -> bytes:
    return (b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_KEY.encode() + b"\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _exchange(port: int, data: bytes | list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` (pieces, stopping if the server closes), read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for piece in [data] if isinstance(data, bytes) else data:
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
                head_end = answer.find(b"\r\n\r\n")
                if b"connection: close" not in answer.lower() and head_end > 0:
                    length = int(answer.lower().split(b"content-length: ")[1].split(b"\r")[0])
                    if len(answer) >= head_end + 4 + length:
                        break
        except ConnectionResetError:
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("value", [b"k\x7f1", b"k\x01", b"\x1bk"])
@pytest.mark.parametrize("header", [b"Idempotency-Key", b"Authorization", b"X-Other"])
def test_control_bytes_in_a_header_get_a_problem_and_write_nothing(
        served: tuple[int, Treadle], header: bytes, value: bytes) -> None:
    port, treadle = served
    status, headers, body = _exchange(port, _request(header + b": " + value + b"\r\n"))
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert problem["status"] == 400 and problem["detail"].startswith("malformed HTTP request")
    assert treadle.list_jobs() == []


def test_utf8_and_tabs_in_header_values_still_reach_the_app(served: tuple[int, Treadle]) -> None:
    port, treadle = served
    extra = "Idempotency-Key: clé\r\nX-Note: a\tb\r\n".encode()
    status, _, body = _exchange(port, _request(extra))
    assert status == 202, body
    # Header bytes are Latin-1 to the app (Starlette), as they were with h11.
    key = "clé".encode().decode("latin-1")
    assert treadle.get_job(json.loads(body)["id"]).idempotency_key == key


def test_an_oversized_head_gets_431_without_being_buffered(
        served: tuple[int, Treadle]) -> None:
    port, treadle = served
    many = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 100) for i in range(200))  # ~21 KB
    status, headers, body = _exchange(port, _request(many))
    assert status == 431 and headers["content-type"] == "application/problem+json"
    assert str(MAX_HEAD_BYTES) in json.loads(body)["detail"]
    # One header value of 20 MB, sent in pieces: refused long before its end.
    start = b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nX-Big: "
    status, _, _ = _exchange(port, [start] + [b"b" * 65536] * 320)
    assert status == 431
    assert treadle.list_jobs() == []
    status, _, _ = _exchange(port, _request(b""))  # the server is fine
    assert status == 202


def test_the_parser_is_chosen_by_name() -> None:
    assert http_protocol("h11") == "h11"
    assert http_protocol("auto") is http_protocol("httptools") is ApiHttpToolsProtocol
    with pytest.raises(ConfigurationError, match="--http"):
        http_protocol("llhttp")
