"""SSRF guard: internal addresses and non-http schemes are refused unless allow-listed (no network)."""

from __future__ import annotations

import asyncio

import pytest

from homeshots.core.errors import UnsafeURLError
from homeshots.network.urlguard import URLGuard


def check(url: str, allow: list[str] | None = None) -> None:
    asyncio.run(URLGuard(allow or []).check(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.5/",
        "https://192.168.1.1:8443/a.jpg",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://localhost:8080/x.jpg",
        "file:///etc/passwd",
        "ftp://93.184.216.34/x.jpg",
        "http:///x.jpg",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check(url)


def test_public_literal_ip_allowed() -> None:
    check("http://93.184.216.34/x.jpg")
    check("https://[2606:2800:220:1:248:1893:25c8:1946]/x.jpg")


def test_error_names_url_and_setting() -> None:
    with pytest.raises(UnsafeURLError) as exc:
        check("http://169.254.169.254/latest/meta-data")
    assert "http://169.254.169.254/latest/meta-data" in str(exc.value)
    assert "HOMESHOTS_ALLOW_PRIVATE_HOSTS" in str(exc.value)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:9000/x.jpg", "127.0.0.1"),
        ("http://127.0.0.1:9000/x.jpg", "127.0.0.0/8"),
        ("http://localhost/x.jpg", "localhost"),
    ],
)
def test_allow_list_lets_loopback_through(url: str, allow: str) -> None:
    check(url, [allow])


def test_allow_list_is_narrow() -> None:
    with pytest.raises(UnsafeURLError):
        check("http://10.0.0.5/", ["127.0.0.0/8"])
