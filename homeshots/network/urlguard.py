"""Refuse source-supplied URLs that point inside our network (SSRF guard).

A listing source decides which image URLs we fetch; without this check a hostile or broken
listing could make a worker fetch cloud metadata (169.254.169.254) or internal services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from homeshots.core.errors import UnsafeURLError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class URLGuard:
    """Checks a URL's scheme and every address its host resolves to against an allow-list."""

    def __init__(self, allow: list[str]) -> None:
        self._hosts = {a.lower() for a in allow if not _is_network(a)}
        self._networks = [ipaddress.ip_network(a, strict=False) for a in allow if _is_network(a)]

    def _allowed(self, host: str, ip: IPAddress) -> bool:
        return host in self._hosts or str(ip) in self._hosts or any(ip in n for n in self._networks)

    async def check(self, url: str) -> None:
        """Raise ``UnsafeURLError`` unless ``url`` is http(s) to a public (or allow-listed) address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UnsafeURLError(f"{url}: scheme {parts.scheme!r} is not http or https")
        host = (parts.hostname or "").lower()
        if not host:
            raise UnsafeURLError(f"{url}: no host")
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _resolve(host, parts.port, url)
        for ip in addresses:
            if is_internal(ip) and not self._allowed(host, ip):
                raise UnsafeURLError(
                    f"{url}: host {host} is a private/loopback/link-local address ({ip}); "
                    "allow it with HOMESHOTS_ALLOW_PRIVATE_HOSTS"
                )


def is_internal(ip: IPAddress) -> bool:
    """True for every address that is not on the public internet."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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


async def _resolve(host: str, port: int | None, url: str) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeURLError(f"{url}: cannot resolve {host}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
