"""Egress policy: where ``env.fetch`` and job callbacks may connect (ADR 0305).

One module decides for both, in this order, before a byte is sent:

1. **Parse and normalise** the URL (:func:`parse_url`): http/https only, no userinfo,
   no IPv6 zone id, IDNA host, a port, a path with percent-escapes decoded and ``.``,
   ``..`` and empty segments removed. What is checked is what is sent.
2. **Match the allow-list** of a dynamic worker (:class:`AllowList`) on that normal form,
   so ``/v1/../admin`` or ``/v1/%2e%2e/admin`` cannot leave an allowed prefix.
3. **Resolve** the host and **check every address** (:meth:`EgressPolicy.address_allowed`):
   loopback, private, link-local, shared, multicast, unspecified, reserved and
   documentation ranges are refused, IPv4-mapped, NAT64 and 6to4 IPv6 forms are judged by
   the IPv4 address inside them, Teredo is refused, and cloud metadata addresses are
   refused always. Odd notations (``127.1``, ``2130706433``, ``0x7f.1``) are whatever
   the resolver makes of them: the resolved address is what is checked.
4. **Connect to the checked address** (no second lookup, so DNS rebinding between check
   and connect is impossible), sending the original ``Host`` and TLS SNI, without
   proxies, redirects (a 3xx is the answer) or connection reuse.

Every refusal and every failure to connect or to read carries the same message,
:data:`REFUSED`, so a caller cannot tell a closed port from an open one or a refused
address from an unreachable one. :class:`EgressError` says internally whether retrying
could help (``permanent``), which callbacks use to choose their error class.

An operator allows private ranges explicitly, e.g. ``TREADLE_EGRESS_ALLOW=10.0.0.0/8``:
read by the CLI (the edge) and passed in as :meth:`EgressPolicy.parse`; never read here.
"""

from __future__ import annotations

import ipaddress
import posixpath
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

from treadle.core.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

REFUSED = (
    "request refused: the URL is not allowed (allow-list or egress policy) "
    "or could not be reached"
)
MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Never reachable, even inside a range an operator allowed: cloud metadata services.
METADATA = tuple(ipaddress.ip_network(n) for n in (
    "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
    "169.254.170.2/32",  # AWS ECS task metadata
    "168.63.129.16/32",  # Azure wire server (a public address)
    "100.100.100.200/32",  # Alibaba Cloud
    "192.0.0.192/32",  # Oracle Cloud
    "fd00:ec2::254/128",  # AWS IPv6 metadata
))
# Refused unless allowed, on top of what the ``ipaddress`` flags say (their lists differ
# between Python versions; these do not).
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressError(Exception):
    """A refused or failed outbound request. The message is always :data:`REFUSED`;
    ``permanent`` is False when trying again later might succeed (DNS, connection)."""

    def __init__(self, *, permanent: bool) -> None:
        super().__init__(REFUSED)
        self.permanent = permanent


def _refused() -> EgressError:
    return EgressError(permanent=True)


@dataclass(frozen=True)
class Target:
    """A parsed, normalised URL: what is matched, resolved and sent."""

    scheme: str
    host: str  # lower-case ASCII (IDNA); an IPv6 literal without brackets
    port: int
    path: str  # normalised and percent-encoded; starts with "/"
    query: str

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return host if default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.authority}{self.path}{query}"

    def via(self, address: IPAddress) -> str:
        """The URL with the checked address in place of the host name."""
        host = f"[{address}]" if address.version == 6 else str(address)
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{host}:{self.port}{self.path}{query}"


def _normal_path(raw: str) -> str:
    """Decode percent-escapes, drop dot and empty segments, encode again.

    An encoded slash becomes a separator like any other, so no server can later decode
    ``..%2f`` into a step out of a prefix this module allowed."""
    try:
        decoded = urllib.parse.unquote(raw or "/", errors="strict")
    except UnicodeDecodeError:
        raise _refused() from None
    if "\\" in decoded or not decoded.isprintable():
        raise _refused()
    trailing = decoded.endswith("/") or decoded.endswith(("/.", "/.."))
    clean = posixpath.normpath("/" + decoded)
    if clean.startswith("//"):  # normpath keeps a leading "//" (POSIX)
        clean = "/" + clean.lstrip("/")
    if trailing and clean != "/":
        clean += "/"
    return urllib.parse.quote(clean, safe="/:@!$&'()*+,;=-._~")


def parse_url(url: object) -> Target:
    """Parse and normalise ``url``; raise :class:`EgressError` if it can never be sent."""
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_LENGTH:
        raise _refused()
    if not url.isprintable() or any(c.isspace() for c in url):
        raise _refused()
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused() from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or "\\" in url:
        raise _refused()
    host = parts.hostname or ""
    if not host or "%" in host:  # no host, or an IPv6 zone id / encoded host
        raise _refused()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        host = str(literal)
    else:
        try:
            host = host.rstrip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise _refused() from None
        if not host or not all(c.isalnum() or c in "-." for c in host):
            raise _refused()
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise _refused()
    return Target(scheme, host, port, _normal_path(parts.path), parts.query)


@dataclass(frozen=True)
class AllowList:
    """A dynamic worker's ``fetch_allow``: host names (any http/https URL on that host)
    or URL prefixes (same scheme, host and port; path prefix at a segment boundary).
    Entries and URLs are compared in normal form; an entry's query is ignored."""

    hosts: frozenset[str] = frozenset()
    prefixes: tuple[Target, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        prefixes: list[Target] = []
        for entry in entries:
            try:
                if "://" in entry:
                    prefixes.append(parse_url(entry))
                else:
                    hosts.add(parse_url(f"http://{entry}/").host)
            except EgressError:
                continue  # an entry that can never match allows nothing
        return cls(frozenset(hosts), tuple(prefixes))

    def matches(self, target: Target) -> bool:
        if target.host in self.hosts:
            return True
        for p in self.prefixes:
            if (p.scheme, p.host, p.port) != (target.scheme, target.host, target.port):
                continue
            # A prefix matches at a segment boundary: "/api" allows "/api/x", not "/apiary".
            boundary = p.path if p.path.endswith("/") else p.path + "/"
            if target.path == p.path or target.path.startswith(boundary):
                return True
        return False


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_v4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form stands for (mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses may be reached. ``allow``: private ranges an operator opened."""

    allow: tuple[Network, ...] = ()
    resolver: Resolver = field(default=_system_resolver, compare=False, repr=False)

    @classmethod
    def parse(cls, setting: str | None) -> EgressPolicy:
        """``"10.0.0.0/8,127.0.0.1/32"`` (the ``TREADLE_EGRESS_ALLOW`` format)."""
        nets: list[Network] = []
        for item in (setting or "").split(","):
            if item.strip():
                try:
                    nets.append(ipaddress.ip_network(item.strip(), strict=False))
                except ValueError:
                    raise ConfigurationError(
                        f"egress allow entry {item.strip()!r} is not an address or CIDR range"
                    ) from None
        return cls(tuple(nets))

    def address_allowed(self, address: IPAddress) -> bool:
        inner = _embedded_v4(address)
        if any(a in n for a in (address, inner) for n in METADATA if a.version == n.version):
            return False
        if any(a in n for a in (address, inner) for n in self.allow if a.version == n.version):
            return True
        if isinstance(inner, ipaddress.IPv6Address) and inner.teredo is not None:
            return False
        if any(inner in n for n in _NOT_PUBLIC if inner.version == n.version):
            return False
        return inner.is_global and not (
            inner.is_multicast or inner.is_reserved or inner.is_private
            or inner.is_loopback or inner.is_link_local or inner.is_unspecified
        )

    def check_static(self, url: str) -> Target:
        """What can be known without DNS (used at submit): a sendable URL whose host is
        not a refused literal address or a ``localhost`` name. Delivery checks again."""
        target = parse_url(url)
        try:
            literal: IPAddress | None = ipaddress.ip_address(target.host)
        except ValueError:
            literal = _inet_aton(target.host)
        if literal is not None and not self.address_allowed(literal):
            raise _refused()
        if literal is None and (target.host == "localhost" or target.host.endswith(
                (".localhost", ".localdomain", ".internal", ".local"))) and not self.allow:
            raise _refused()
        return target

    def resolve(self, target: Target) -> list[IPAddress]:
        """Every address of ``target.host``, all checked; refused if any is not allowed."""
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0])
                     for a in self.resolver(target.host, target.port)]
        except (OSError, UnicodeError, ValueError):
            raise EgressError(permanent=False) from None
        if not found:
            raise EgressError(permanent=False)
        if not all(self.address_allowed(a) for a in found):
            raise _refused()
        return list(dict.fromkeys(found))

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: float = 10.0,
        max_bytes: int = 1 << 20,
        allow: AllowList | None = None,
        sink: BinaryIO | None = None,
    ) -> Response:
        """Send one request under this policy; a body over ``max_bytes`` is refused.

        With ``sink`` (a binary file, seekable) the body is written there as it arrives,
        never held in memory, and the response's ``body`` is empty.
        Raises :class:`EgressError` (always the message :data:`REFUSED`)."""
        deadline = time.monotonic() + timeout
        target = parse_url(url)
        if allow is not None and not allow.matches(target):
            raise _refused()
        addresses = self.resolve(target)
        sent = {k: v for k, v in (headers or {}).items()
                if k.lower() not in ("host", "content-length", "transfer-encoding",
                                     "connection")}
        sent["Host"] = target.authority
        # Compressed bodies would be decoded after the size check: ask for none.
        sent["Accept-Encoding"] = "identity"
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        for address in addresses:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if sink is not None:  # nothing of a failed address's body stays
                sink.seek(0)
                sink.truncate()
            try:
                return _send(method, target.via(address), sent, content, extensions, left,
                             deadline, max_bytes, sink)
            except _TooLarge:
                raise _refused() from None
            except (httpx.HTTPError, OSError, ValueError, UnicodeError):
                continue  # the next checked address, if any
        raise EgressError(permanent=False)


class _TooLarge(Exception):
    pass


def _send(
    method: str, url: str, headers: dict[str, str], content: bytes | None,
    extensions: dict[str, Any], timeout: float, deadline: float, max_bytes: int,
    sink: BinaryIO | None = None,
) -> Response:
    # A client per request: no pooled connection is ever reused for another host name
    # (a pooled TLS connection is keyed by address, not by the name it was verified for).
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout,
                      limits=limits) as client:
        request = client.build_request(method, url, headers=headers, content=content,
                                       extensions=extensions)
        resp = client.send(request, stream=True)
        try:
            body = bytearray()
            size = 0
            for chunk in resp.iter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise _TooLarge()
                if sink is None:
                    body += chunk
                else:
                    sink.write(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("deadline passed", request=request)
            return Response(resp.status_code, dict(resp.headers.items()), bytes(body))
        finally:
            resp.close()


def _inet_aton(host: str) -> IPAddress | None:
    """What the C library reads as an IPv4 address (``127.1``, ``0x7f.1``, ``2130706433``)."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


__all__ = [
    "METADATA",
    "REFUSED",
    "AllowList",
    "EgressError",
    "EgressPolicy",
    "Response",
    "Target",
    "parse_url",
]
