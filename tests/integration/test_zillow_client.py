"""The Zillow client over real HTTP against the local sandbox (127.0.0.1 only).

A few redirect-policy cases the sandbox cannot stage (off-host, loops) run on ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator

import httpx
import pytest
from homeshots_sandbox import Listing, SandboxServer, generate_photo
from PIL import Image

from homeshots.core.errors import SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.core.settings import Settings
from homeshots.sources.zillow import ZillowExtractor
from tests.integration.helpers import Sleeps

SIZE = (640, 480)
HOMES = "/zillow/homedetails/"
CAMELBACK = "/zillow/homedetails/4732-E-Camelback-Rd-Phoenix-AZ-85018/7000001_zpid/"


def _listings() -> list[Listing]:
    return [
        Listing("PHX1001", "4732 E Camelback Rd", "Phoenix", "85018", ["a1.jpg", "a2.jpg", "a3.jpg"], zpid="7000001"),
        Listing("PHX1010", "4411 N 40th St", "Phoenix", "85018", ["b1.jpg", "b2.jpg"], zpid="7000010"),
        Listing(
            "PHX1008",
            "5220 E Windsor Ave",
            "Phoenix",
            "85008",
            ["c1.jpg"],
            zpid="7000008",
            blocked=frozenset({"zillow"}),
        ),
        Listing(
            "PHX1009", "7015 N Central Ave", "Phoenix", "85020", ["d1.jpg"], zpid="7000009", sources=frozenset({"mls"})
        ),  # not on Zillow at all
    ]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    names = ["a1.jpg", "a2.jpg", "a3.jpg", "b1.jpg", "b2.jpg", "c1.jpg", "d1.jpg"]
    photos = {name: generate_photo(i, size=SIZE) for i, name in enumerate(names)}
    with SandboxServer(_listings(), photos, services=["zillow"]) as server:
        yield server


class CountingLimiter:
    """Stands in for the cluster-wide token bucket: counts the tokens taken."""

    def __init__(self) -> None:
        self.taken = 0

    async def acquire(self) -> None:
        self.taken += 1

    def pause(self, seconds: float) -> None:
        pass


def extract(
    sb: SandboxServer,
    prop: Property,
    *,
    sleep: Sleeps | None = None,
    limiter: CountingLimiter | None = None,
    **settings: object,
) -> list[ImageRef]:
    config = Settings(zillow_base_url=sb.env()["HOMESHOTS_ZILLOW_BASE_URL"], **settings)  # type: ignore[arg-type]

    async def run() -> list[ImageRef]:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            extractor = ZillowExtractor(client, config, limiter=limiter, sleep=sleep or Sleeps())  # type: ignore[arg-type]
            return await extractor.extract(prop)

    return asyncio.run(run())


def paths(sb: SandboxServer) -> list[str]:
    return [p for _, p in sb.request_log]


BY_ZPID = Property("p1", "4732 E Camelback Rd", city="Phoenix", state="AZ", zip="85018", zpid="7000001")
BY_ADDRESS = Property("p10", "4411 n 40th st", city="Phoenix", state="AZ", zip="85018")
BLOCKED = Property("p8", "5220 E Windsor Ave", city="Phoenix", state="AZ", zip="85008", zpid="7000008")


def test_by_zpid_gives_the_widest_copy_of_every_photo_in_order(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_ZPID)
    widest = round(0.75 * SIZE[0])
    assert [r.url for r in refs] == [sandbox.variant_url("zillow", n, widest) for n in ("a1.jpg", "a2.jpg", "a3.jpg")]
    assert [r.order for r in refs] == [0, 1, 2]
    assert {(r.source, r.declared_width) for r in refs} == {("zillow", widest)}
    assert paths(sandbox) == [CAMELBACK]


def test_stale_slug_is_redirected_to_the_canonical_page(sandbox: SandboxServer) -> None:
    limiter = CountingLimiter()
    refs = extract(sandbox, Property("p2", "4732 E Camelback Rd", zpid="7000001"), limiter=limiter)
    assert len(refs) == 3
    assert paths(sandbox) == ["/zillow/homedetails/4732-E-Camelback-Rd/7000001_zpid/", CAMELBACK]
    assert limiter.taken == 2  # every hop takes a token from the source's bucket


def test_by_address_follows_the_search_redirect(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_ADDRESS)
    assert [r.url for r in refs] == [sandbox.variant_url("zillow", n, 480) for n in ("b1.jpg", "b2.jpg")]
    log = paths(sandbox)
    assert log[0] == "/zillow/homes/4411 n 40th st, Phoenix, AZ 85018_rb/"
    assert log[1:] == ["/zillow/homedetails/4411-N-40th-St-Phoenix-AZ-85018/7000010_zpid/"]


def test_unknown_home_is_empty_not_an_error(sandbox: SandboxServer) -> None:
    assert extract(sandbox, Property("p12", "1290 E Missouri Ave", city="Phoenix", zip="85014")) == []
    assert extract(sandbox, Property("p13", "1290 E Missouri Ave", zpid="7999999")) == []
    assert extract(sandbox, Property("p9", "7015 N Central Ave", city="Phoenix", zip="85020")) == []
    sandbox.fail(HOMES, 404, 1)
    assert extract(sandbox, BY_ZPID) == []


def test_perimeterx_page_with_status_200_is_blocked(sandbox: SandboxServer) -> None:
    with pytest.raises(SourceError) as info:
        extract(sandbox, BLOCKED)
    err = info.value
    assert (err.kind, err.retryable, err.source, err.property_id) == ("blocked", False, "zillow", "p8")
    assert str(err).startswith("zillow: property p8: blocked by Zillow's bot wall")
    assert "PerimeterX page, HTTP 200" in str(err)


def test_blocked_home_found_by_address_is_blocked_too(sandbox: SandboxServer) -> None:
    with pytest.raises(SourceError) as info:
        extract(sandbox, Property("p8b", "5220 E Windsor Ave", city="Phoenix", zip="85008"))
    assert info.value.kind == "blocked"


@pytest.mark.parametrize("body", [None, b"<html><title>Access to this page has been denied</title></html>"])
def test_http_403_is_blocked(sandbox: SandboxServer, body: bytes | None) -> None:
    sandbox.fail(HOMES, 403, 1, body=body)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_ZPID)
    assert (info.value.kind, info.value.retryable) == ("blocked", False)
    assert "HTTP 403" in str(info.value)


def test_503_twice_then_success(sandbox: SandboxServer) -> None:
    sandbox.fail(HOMES, 503, times=2)
    sleeps = Sleeps()
    refs = extract(sandbox, BY_ZPID, sleep=sleeps)
    assert len(refs) == 3
    assert len(sleeps.waits) == 2
    assert paths(sandbox) == [CAMELBACK] * 3


def test_503_past_the_retries_is_a_retryable_failure(sandbox: SandboxServer) -> None:
    sandbox.fail(HOMES, 503, times=5)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_ZPID, source_max_retries=1)
    assert (info.value.kind, info.value.retryable) == ("server_error", True)
    assert len(paths(sandbox)) == 2


def test_garbled_page_is_a_parse_failure(sandbox: SandboxServer) -> None:
    truncated = b'<html><script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"compo'
    sandbox.fail(HOMES, 200, 1, body=truncated)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_ZPID)
    assert (info.value.kind, info.value.retryable) == ("parse", False)
    assert "__NEXT_DATA__ script is not closed" in str(info.value)


def test_oversized_page_is_refused(sandbox: SandboxServer) -> None:
    sandbox.fail(HOMES, 200, 1, body=b"<html>" + b"x" * 4096 + b"</html>")
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_ZPID, page_max_bytes=1024)
    assert info.value.kind == "too_large"


def test_widest_copy_downloads_as_a_jpeg_three_quarters_of_the_master(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_ZPID)
    master = sandbox.photo_size("a1.jpg")
    assert master is not None
    response = httpx.get(refs[0].url or "")
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as img:
        assert img.format == "JPEG"
        assert img.width == refs[0].declared_width == round(0.75 * master[0])


# --- redirect policy (no sandbox can stage these) ---------------------------------------------------------------

BASE = "https://www.zillow.com"


def mocked(handler: Callable[[httpx.Request], httpx.Response], prop: Property) -> list[ImageRef]:
    async def run() -> list[ImageRef]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False) as client:
            return await ZillowExtractor(client, Settings(zillow_base_url=BASE), sleep=Sleeps()).extract(prop)

    return asyncio.run(run())


def test_relative_redirect_is_followed_and_html_is_asked_for() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("_rb/"):
            return httpx.Response(302, headers={"Location": "/homedetails/x/1_zpid/"})
        return httpx.Response(404, text="<html>gone</html>")

    assert mocked(handler, BY_ADDRESS) == []
    assert [str(r.url) for r in seen][1] == f"{BASE}/homedetails/x/1_zpid/"
    assert {r.headers["accept"] for r in seen} == {"text/html"}


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("https://evil.example/homedetails/x/1_zpid/", "redirected off Zillow to https://evil.example/"),
        ("http://www.zillow.com:8080/homedetails/", "redirected off Zillow"),
        ("ftp://www.zillow.com/homedetails/", "redirected off Zillow"),
        ("", "HTTP 301 without Location"),
    ],
)
def test_redirect_off_zillow_is_refused(location: str, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": location} if location else {})

    with pytest.raises(SourceError) as info:
        mocked(handler, BY_ZPID)
    assert (info.value.kind, info.value.retryable) == ("redirect", False)
    assert message in str(info.value)


def test_redirect_loop_stops_after_five_hops() -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(request.url.path)
        return httpx.Response(301, headers={"Location": f"/homedetails/loop/{len(hops)}_zpid/"})

    with pytest.raises(SourceError, match="more than 5 redirects"):
        mocked(handler, BY_ZPID)
    assert len(hops) == 6
