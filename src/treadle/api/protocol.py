"""The HTTP/1.1 parser the API is served with (ADR 0026).

uvicorn's pure-Python parser (h11) costs about 100 µs of CPU per request, more than the
rest of a ``POST /v1/jobs`` on the fast path; its C parser (httptools, i.e. llhttp)
costs a tenth of that. llhttp is stricter: a control byte (NUL, DEL, ...) in a header
value is a malformed request, which h11 let through to the app. Such a request never
reaches the app, so it changes nothing; :class:`ApiHttpToolsProtocol` answers it with a
problem document (400) instead of uvicorn's plain text, and bounds the request line and
headers as h11 did (16 KiB; 431 past that): llhttp alone keeps buffering them.
"""

from __future__ import annotations

import json

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from treadle.api.problems import PROBLEM_JSON

MAX_HEAD_BYTES = 16 * 1024  # h11's default bound on an incomplete request head


class _HeadTooLarge(Exception):
    pass


class ApiHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with problem+json errors and a bounded head."""

    _head_open = True  # between a message's start and the end of its headers
    _head_bytes = 0  # bytes received while the head was open (llhttp buffers a header)
    _head_size = 0  # the request line's URL and the header names and values so far

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_bytes, self._head_size = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def _grow(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge  # llhttp stops and raises a parser error

    def data_received(self, data: bytes) -> None:
        if self._head_open:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn's own data_received
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if self._head_size > MAX_HEAD_BYTES:
                self._head_too_large()
            else:
                self.logger.warning("Invalid HTTP request received: %s", exc)
                self._refuse(400, f"malformed HTTP request: {_reason(exc)}")
            return
        if self._head_open and self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large()

    def _head_too_large(self) -> None:
        self.logger.warning("HTTP request head over %d bytes", MAX_HEAD_BYTES)
        self._refuse(431, f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")

    def send_400_response(self, msg: str) -> None:  # uvicorn's other refusals
        self._refuse(400, msg)

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` as a problem document and close (the stream is unusable)."""
        slug, title = _PROBLEMS[status]
        body = json.dumps({"type": f"urn:treadle:problem:{slug}", "title": title,
                           "status": status, "detail": detail}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend([b"content-type: ", PROBLEM_JSON.encode(), b"\r\n",
                     b"content-length: ", str(len(body)).encode(), b"\r\n",
                     b"connection: close\r\n\r\n", body])
        if not self.transport.is_closing():
            self.transport.write(b"".join(head))
            self.transport.close()


_PROBLEMS = {400: ("bad-request", "Bad request"),
             431: ("headers-too-large", "Request header fields too large")}


def _reason(exc: Exception) -> str:
    # llhttp's reasons are fixed ASCII phrases ("Invalid header value char"); the request's
    # own bytes are never echoed.
    text = str(exc.args[0]) if exc.args else ""
    return text if text.isascii() and text.isprintable() and len(text) < 200 else "unparsable"


