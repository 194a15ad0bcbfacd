"""Egress (ADR 0305) — egress to the host, library surface (sandbox manager, the policy).

Before the fix ``env.fetch`` reached loopback in every notation (and so the API itself),
allow-list prefixes accepted ``..``, and error messages told open ports from closed ones.
Every refusal and failure now carries one message, ``treadle.egress.REFUSED``, and a
local target on loopback is reachable only when the operator allows it explicitly.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.security.conftest import py, tenant
from tests.security.target import Target, loopback_target
from tests.support.pg import free_port
from treadle.egress import REFUSED, EgressError, EgressPolicy
from treadle.sandbox import Bindings, SandboxManager

FETCH = (
    "def handler(url, env):\n"
    "    try:\n"
    "        r = env.fetch(url)\n"
    "    except Exception as exc:\n"
    "        return ['refused', str(exc)]\n"
    "    return [r['status'], r['body']]\n"
)
LOOPBACK_ALLOWED = Bindings(egress=EgressPolicy.parse("127.0.0.1/32"))


@pytest.fixture
def target() -> Iterator[Target]:
    with loopback_target() as t:
        yield t


def fetch(mgr: SandboxManager, url: str, allow: tuple[str, ...],
          bindings: Bindings | None = None) -> Any:
    spec = py(FETCH, fetch_allow=allow)
    return mgr.load(spec, url, tenant=tenant(), bindings=bindings).output


def loopback_urls(port: int) -> list[str]:
    return [f"http://{host}:{port}/" for host in (
        "127.0.0.1", "localhost", "127.1", "2130706433", "0x7f.1", "0177.0.0.1", "0.0.0.0",
        "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]", "127.0.0.1.",
    )]


def test_loopback_in_every_notation_is_refused_even_when_allow_listed(
    manager: SandboxManager, target: Target
) -> None:
    urls = loopback_urls(target.port)
    allow = tuple(sorted({u.split("//")[1].rsplit(":", 1)[0] for u in urls}))
    for url in urls:
        assert fetch(manager, url, allow) == ["refused", REFUSED], url
    assert target.seen == []  # nothing reached the host


def test_an_operator_can_allow_a_range_explicitly(manager: SandboxManager,
                                                  target: Target) -> None:
    out = fetch(manager, f"{target.url}/ok/x", (f"{target.url}/ok/",), LOOPBACK_ALLOWED)
    assert out == [200, '{"served": "/ok/x"}']
    # Redirects are answers, never followed (the Location could be anywhere).
    redirect = fetch(manager, f"{target.url}/redirect", ("127.0.0.1",), LOOPBACK_ALLOWED)
    assert redirect[0] == 302 and not target.reached("/secret")


@pytest.mark.parametrize("path", [
    "/ok/../secret", "/ok/%2e%2e/secret", "/ok/%2E%2E/secret", "/ok/..%2fsecret",
    "/ok/x/../../secret", "/ok/./../secret", "/ok/..%5csecret", "/ok/%252e%252e/secret",
])
def test_allow_list_prefixes_cannot_be_left_with_dot_segments(
    manager: SandboxManager, target: Target, path: str
) -> None:
    out = fetch(manager, target.url + path, (f"{target.url}/ok/",), LOOPBACK_ALLOWED)
    if out[0] == "refused":
        assert out == ["refused", REFUSED]
    else:  # sent in normal form, inside the prefix (a literal "%2e%2e" segment name)
        assert out[0] == 200 and out[1].startswith('{"served": "/ok/')
    assert not target.reached("secret") or all(p.startswith("/ok/") and ".." not in p
                                                 for p in target.seen)


def test_one_message_for_open_closed_and_refused(manager: SandboxManager,
                                                 target: Target) -> None:
    closed = free_port()
    allow = ("127.0.0.1", "192.0.2.1", "169.254.169.254")
    answers = {
        "open port, default policy": fetch(manager, target.url + "/", allow),
        "closed port, default policy": fetch(manager, f"http://127.0.0.1:{closed}/", allow),
        "closed port, loopback allowed": fetch(manager, f"http://127.0.0.1:{closed}/", allow,
                                               LOOPBACK_ALLOWED),
        "not in the allow-list": fetch(manager, target.url + "/", ("example.com",),
                                       LOOPBACK_ALLOWED),
        "metadata": fetch(manager, "http://169.254.169.254/latest/meta-data/", allow,
                          Bindings(egress=EgressPolicy.parse("169.254.0.0/16"))),
    }
    assert all(a == ["refused", REFUSED] for a in answers.values()), answers
    assert target.seen == []


@pytest.mark.parametrize("url", [
    "http://allowed.example@127.0.0.1:{port}/",
    "http://127.0.0.1:{port}@allowed.example/",
    "ftp://127.0.0.1:{port}/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/",
    "http://[fe80::1%25lo]:{port}/",
    "http://[::1%251]:{port}/",
    "http://127.0.0.1:{port}\\@allowed.example/",
    "http://bücher.example:{port}/",
    "http://xn--bcher-kva.example:{port}/",
    "http://127.0.0.1:{port}/ok/\x00",
    "http://127.0.0.1:99999/",
])
def test_odd_urls_are_refused_with_the_same_message(
    manager: SandboxManager, target: Target, url: str
) -> None:
    allow = ("127.0.0.1", "allowed.example", "bücher.example", "::1", "fe80::1")
    assert fetch(manager, url.format(port=target.port), allow) == ["refused", REFUSED]
    assert target.seen == []


def test_the_checked_address_is_the_one_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding: the name resolves to a public address when checked and to loopback
    # for anyone resolving it again. The policy must connect to the checked address.
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    connected: list[Any] = []

    def no_network(address: Any, *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket, "create_connection", no_network)
    policy = EgressPolicy(resolver=lambda host, port: ["93.184.215.14"])
    with pytest.raises(EgressError) as err:
        policy.request("GET", "http://rebind.example:8080/x", timeout=2)
    assert str(err.value) == REFUSED
    assert connected and all(a[0] == "93.184.215.14" for a in connected), connected
    # And a name that resolves to loopback *and* a public address is refused outright.
    mixed = EgressPolicy(resolver=lambda host, port: ["93.184.215.14", "127.0.0.1"])
    with pytest.raises(EgressError):
        mixed.request("GET", "http://mixed.example/", timeout=2)
    assert len(connected) == 1
