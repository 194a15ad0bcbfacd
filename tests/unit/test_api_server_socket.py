"""The socket ``treadle server --workers N`` shares (ADR 0033): connections accepted on
it have Nagle off, as a single process's do; without it each answer's body waited ~40 ms
for the client's delayed ACK of the head."""

from __future__ import annotations

import asyncio
import socket

from treadle.api.server import listening_socket


async def _nodelay_of_accepted(sock: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            raw = transport.get_extra_info("socket")
            accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(accepted, 10)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


def test_connections_accepted_on_the_shared_socket_have_nagle_off() -> None:
    sock = listening_socket("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    assert asyncio.run(_nodelay_of_accepted(sock)) == 1


def test_a_socket_made_as_uvicorn_makes_it_would_keep_nagle_on() -> None:
    # Why listening_socket exists: asyncio only sets TCP_NODELAY when proto says TCP.
    sock = socket.socket(socket.AF_INET)  # uvicorn 0.54 Config.bind_socket
    sock.bind(("127.0.0.1", 0))
    assert asyncio.run(_nodelay_of_accepted(sock)) == 0
