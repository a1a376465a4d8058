"""Refuse source-supplied URLs that point inside our network (SSRF guard), and say where to connect.

A listing source decides which image URLs we fetch; without this check a hostile or broken
listing could make a worker fetch cloud metadata (169.254.169.254) or internal services. The guard
resolves the host once and returns the address it checked: the fetcher connects to exactly that
address (keeping the Host header and the TLS name), so a DNS answer that changes between the check
and the connect (rebinding) cannot move the request inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from homeshots.core.errors import FetchFailedError, FetchUnavailableError, UnsafeURLError
from homeshots.core.redact import redact_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_MAX_URL = 8192


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: the URL as given, its host and port, and the checked address (None
    when the origin is trusted by configuration and the client resolves it itself)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the default port filled in; None when it does not parse."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        return None
    return (parts.scheme, (parts.hostname or "").lower(), port)


class URLGuard:
    """Checks a URL's scheme and every address its host resolves to against an allow-list."""

    def __init__(self, allow: list[str], *, trusted_origins: list[str] | None = None) -> None:
        self._hosts = {a.lower() for a in allow if not _is_network(a)}
        self._networks = [ipaddress.ip_network(a, strict=False) for a in allow if _is_network(a)]
        self._trusted = {o for url in trusted_origins or [] if (o := origin_of(url))}
        """Origins the operator configured (a source's API base URL): no private-address check."""

    def _allowed(self, host: str, ip: IPAddress) -> bool:
        return host in self._hosts or str(ip) in self._hosts or any(ip in n for n in self._networks)

    async def check(self, url: str) -> None:
        """Raise ``UnsafeURLError`` unless ``url`` is http(s) to a public (or allow-listed) address."""
        await self.resolve(url)

    async def resolve(self, url: str, *, trust_configured: bool = True) -> Target:
        """The checked target of ``url``; ``FetchFailedError`` (kind ``bad_url``) when it does not parse,
        ``UnsafeURLError`` when it points inside. ``trust_configured`` off (a URL a source handed out,
        such as a photo's) checks even the operator's own API origins."""
        parts = _split(url)
        if parts.scheme not in ("http", "https"):
            raise UnsafeURLError(f"{redact_url(url)}: scheme {parts.scheme!r} is not http or https")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise UnsafeURLError(f"{redact_url(url)}: no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host.encode("idna")
        except (ValueError, UnicodeError) as exc:
            raise FetchFailedError(url, f"malformed URL: {exc}", kind="bad_url") from None
        if trust_configured and (parts.scheme, host, port) in self._trusted:
            return Target(url, parts.scheme, host, port, None)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _resolve(host, port, url)
        for ip in addresses:
            if is_internal(ip) and not self._allowed(host, ip):
                raise UnsafeURLError(
                    f"{redact_url(url)}: host {host} is a private/loopback/link-local address ({ip}); "
                    "allow it with HOMESHOTS_ALLOW_PRIVATE_HOSTS"
                )
        return Target(url, parts.scheme, host, port, addresses[0])


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or len(url) > _MAX_URL:
        raise FetchFailedError(str(url)[:200], f"URL is not a string of at most {_MAX_URL} characters", kind="bad_url")
    if any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise FetchFailedError(url, "URL has whitespace or control characters", kind="bad_url")
    try:
        return urlsplit(url)
    except ValueError as exc:  # "An IPv4 address cannot be in brackets", "Invalid IPv6 URL"
        raise FetchFailedError(url, f"malformed URL: {exc}", kind="bad_url") from None


def is_internal(ip: IPAddress) -> bool:
    """True for every address that is not on the public internet (IPv4 inside IPv6 forms included)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_internal(embedded):
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


async def _resolve(host: str, port: int, url: str) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        cls = FetchUnavailableError if exc.errno == socket.EAI_AGAIN else FetchFailedError
        raise cls(url, f"cannot resolve {host}: {exc.strerror or exc}", kind="dns") from None
    except (UnicodeError, ValueError) as exc:
        raise FetchFailedError(url, f"cannot resolve {host}: {exc}", kind="bad_url") from None
    addresses = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    if not addresses:
        raise UnsafeURLError(f"{redact_url(url)}: {host} resolves to no IP address")
    return addresses
