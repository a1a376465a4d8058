"""The one HTTP stack over real sockets: caps while decoding, deadlines, guarded redirects, pinning."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import tracemalloc

import httpx
import pytest

from homeshots.core.errors import FetchFailedError, FetchUnavailableError, UnsafeURLError
from homeshots.network import urlguard
from homeshots.network.fetcher import Fetched, Fetcher, FetchPolicy
from homeshots.network.urlguard import URLGuard
from tests.hostile.server import CanaryServer, Exchange, RawServer
from tests.integration.helpers import Sleeps

POLICY = FetchPolicy(timeout=2, deadline=3, max_bytes=1024 * 1024, retries=2)


def fetch(
    url: str,
    policy: FetchPolicy = POLICY,
    *,
    allow: tuple[str, ...] = ("127.0.0.1",),
    sleeps: Sleeps | None = None,
    **kw: object,
) -> Fetched:
    async def run() -> Fetched:
        async with httpx.AsyncClient(trust_env=False) as client:
            fetcher = Fetcher(client, URLGuard(list(allow)), sleep=sleeps or Sleeps())
            return await fetcher.fetch(url, policy, **kw)  # type: ignore[arg-type]

    return asyncio.run(run())


def test_body_over_the_cap_is_refused_for_good() -> None:
    big = b"x" * 4096
    server = RawServer(routes={"/big": lambda ex: ex.respond(200, big)})
    with server, pytest.raises(FetchFailedError, match="response larger than 1024 bytes") as info:
        fetch(server.url("/big"), FetchPolicy(timeout=2, deadline=5, max_bytes=1024, retries=2))
    assert not info.value.retryable and info.value.kind == "too_large"
    assert server.hits == ["/big"], "a body over the cap is not asked for again"


def test_connection_errors_are_retried_then_retryable() -> None:
    with RawServer() as gone:
        url = gone.url("/nothing")
    sleeps = Sleeps()
    with pytest.raises(FetchUnavailableError) as info:
        fetch(url, sleeps=sleeps)
    assert info.value.retryable and info.value.kind == "connection" and "ConnectError" in str(info.value)
    assert len(sleeps.waits) == 2


def test_stacked_gzip_bomb_is_refused_while_decoding_with_bounded_memory() -> None:
    bomb = gzip.compress(gzip.compress(gzip.compress(b"\0" * (256 << 20), 9), 9), 9)  # 256 MiB in ~300 bytes
    headers = {"Content-Encoding": "gzip, gzip, gzip", "Content-Type": "image/jpeg"}
    with RawServer(routes={"/bomb": lambda ex: ex.respond(200, bomb, headers)}) as server:
        tracemalloc.start()
        try:
            with pytest.raises(FetchFailedError) as info:
                fetch(server.url("/bomb"), FetchPolicy(timeout=5, deadline=10, max_bytes=8 << 20, retries=0))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert info.value.kind == "too_large"
    assert peak < 24 << 20, f"decoding held {peak >> 20} MiB for an 8 MiB cap"


def test_unknown_encoding_is_refused() -> None:
    server = RawServer(routes={"/br": lambda ex: ex.respond(200, b"\x0b\x02\x80hi\x03", {"Content-Encoding": "br"})})
    with server, pytest.raises(FetchFailedError) as info:
        fetch(server.url("/br"))
    assert info.value.kind == "bad_encoding"


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_dribbling_server_costs_at_most_the_deadline(part: str) -> None:
    def slow(ex: Exchange) -> None:
        if part == "headers":
            ex.dribble(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0.5, server.stopping)
        else:
            ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            ex.dribble(b"x" * 1000, 0.5, server.stopping)

    with RawServer(routes={"/slow": slow}) as server:
        started = time.monotonic()
        with pytest.raises(FetchUnavailableError) as info:
            fetch(server.url("/slow"), FetchPolicy(timeout=2, deadline=3, max_bytes=1 << 20, retries=2))
        elapsed = time.monotonic() - started
    assert info.value.kind == "deadline" and info.value.retryable
    assert elapsed < 4.5, "a deadline overrun is not retried: a slow sender stays slow"
    assert server.hits == ["/slow"]


def test_redirect_to_an_address_outside_the_allow_list_never_reaches_it() -> None:
    with (
        CanaryServer() as canary,
        RawServer(routes={"/r": lambda ex: ex.respond(302, headers={"Location": canary.url("/meta-data")})}) as server,
        pytest.raises(UnsafeURLError),
    ):
        fetch(server.url("/r"), follow=lambda _a, _b: None)
    assert canary.connections == 0 and canary.hits == []


def test_redirect_loop_ends_as_a_named_failure() -> None:
    with RawServer() as server:
        server.routes["/loop/"] = lambda ex: ex.respond(302, headers={"Location": f"/loop/{len(server.hits)}"})
        with pytest.raises(FetchFailedError, match="more than 5 redirects") as info:
            fetch(server.url("/loop/0"), follow=lambda _a, _b: None)
    assert info.value.kind == "redirect" and len(server.hits) == 6


def test_connects_to_the_address_the_guard_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """'rebind.test' does not resolve at all: the request only works because it goes to the checked address,
    with the name kept in the Host header, and is not resolved a second time by the HTTP client."""
    seen: list[str] = []

    def host(ex: Exchange) -> None:
        seen.append(ex.headers.get("host", ""))
        ex.respond(200, b"pinned")

    async def resolve(name: str, port: int, url: str) -> list:
        assert name == "rebind.test"
        return [urlguard.ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(urlguard, "_resolve", resolve)
    with RawServer(routes={"/": host}) as server:
        got = fetch(f"http://rebind.test:{server.port}/x", allow=("127.0.0.1",))
    assert got.content == b"pinned" and seen == [f"rebind.test:{server.port}"]


def test_retry_after_is_honoured_then_the_answer_taken() -> None:
    calls = threading.Semaphore(0)

    def flaky(ex: Exchange) -> None:
        if calls.acquire(blocking=False):
            ex.respond(200, b"fine")
        else:
            calls.release()
            ex.respond(429, b"", {"Retry-After": "7"})

    sleeps = Sleeps()
    with RawServer(routes={"/flaky": flaky}) as server:
        assert fetch(server.url("/flaky"), sleeps=sleeps).content == b"fine"
    assert sleeps.waits == [7.0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/x.jpg",
        "http://[1.2.3.4]/x.jpg",
        "http://[::1/x.jpg",
        "http://exa mple.com/x.jpg",
        "javascript:alert(1)",
        "http://\u2028/x",
    ],
)
def test_malformed_urls_are_named_failures(url: str) -> None:
    with pytest.raises(FetchFailedError) as info:
        fetch(url)
    assert info.value.kind in ("bad_url", "unsafe_url") and not info.value.retryable
