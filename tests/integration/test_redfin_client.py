"""The Redfin client over real HTTP against the local sandbox's stingray imitation (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import httpx
import pytest
from homeshots_sandbox import Listing, SandboxServer, generate_photo
from homeshots_sandbox.listing import ALL_SOURCES
from PIL import Image

from homeshots.core.errors import SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.core.settings import Settings
from homeshots.sources.redfin import RedfinExtractor
from tests.integration.helpers import Sleeps

AUTOCOMPLETE = "/redfin/stingray/do/location-autocomplete"
ABOVE = "/redfin/stingray/api/home/details/aboveTheFold"
MASTER = (1024, 768)


def _listings() -> list[Listing]:
    return [
        Listing(
            "PHX1001", "4732 E Camelback Rd", "Phoenix", "85018", ["a1.jpg", "a2.jpg", "a3.jpg"], redfin_id="27000001"
        ),
        # same house number, other street: listed by autocomplete, never to be taken for 4732 E Camelback Rd
        Listing("PHX1020", "4732 E Calle Del Norte", "Phoenix", "85018", ["n1.jpg"], redfin_id="27000020"),
        Listing(
            "PHX1008",
            "5220 E Windsor Ave",
            "Phoenix",
            "85008",
            ["w1.jpg"],
            redfin_id="27000008",
            blocked=frozenset({"redfin"}),
        ),
        Listing(
            "PHX1009",
            "7015 N Central Ave",
            "Phoenix",
            "85020",
            ["c1.jpg"],
            redfin_id="27000009",
            sources=ALL_SOURCES - {"redfin"},
        ),
    ]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    names = ["a1.jpg", "a2.jpg", "a3.jpg", "n1.jpg", "w1.jpg", "c1.jpg"]
    photos = {name: generate_photo(i, size=MASTER) for i, name in enumerate(names)}
    with SandboxServer(_listings(), photos, services=["redfin"]) as server:
        yield server


def extract(sb: SandboxServer, prop: Property, *, sleep: Sleeps | None = None, **kw: object) -> list[ImageRef]:
    settings = Settings(redfin_base_url=sb.env()["HOMESHOTS_REDFIN_BASE_URL"], **kw)  # type: ignore[arg-type]

    async def run() -> list[ImageRef]:
        async with httpx.AsyncClient() as client:
            return await RedfinExtractor(client, settings, sleep=sleep or Sleeps()).extract(prop)

    return asyncio.run(run())


def calls(sb: SandboxServer, path: str) -> int:
    return sum(1 for _, p in sb.request_log if p == path)


def full_screen(sb: SandboxServer, *names: str) -> list[str]:
    return [sb.variant_url("redfin", n, round(0.625 * MASTER[0]), "webp") for n in names]


BY_URL = Property(
    "p1", "ignored", redfin_url="https://www.redfin.com/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001"
)
BY_ADDRESS = Property("p1", "4732 E Camelback Rd", city="Phoenix", state="AZ", zip="85018")
BLOCKED = Property("p8", "5220 E Windsor Ave", city="Phoenix", state="AZ", zip="85008")


def test_redfin_url_id_goes_to_the_configured_base_only(sandbox: SandboxServer) -> None:
    """www.redfin.com is unreachable here: only the id is used, the request goes to the sandbox."""
    refs = extract(sandbox, BY_URL)
    assert [r.url for r in refs] == full_screen(sandbox, "a1.jpg", "a2.jpg", "a3.jpg")
    assert [r.order for r in refs] == [0, 1, 2]
    assert all(r.source == "redfin" and r.key for r in refs)
    assert calls(sandbox, AUTOCOMPLETE) == 0 and calls(sandbox, ABOVE) == 1


def test_address_lookup_skips_the_near_miss(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_ADDRESS)
    assert [r.url for r in refs] == full_screen(sandbox, "a1.jpg", "a2.jpg", "a3.jpg")
    assert calls(sandbox, AUTOCOMPLETE) == 1


def test_address_spelled_differently_still_found(sandbox: SandboxServer) -> None:
    """No exactMatch from Redfin: the client picks the address row by its normalized street name."""
    refs = extract(sandbox, Property("p1", "4732 East Camelback Road", city="Phoenix", zip="85018"))
    assert len(refs) == 3


def test_url_without_id_falls_back_to_the_address(sandbox: SandboxServer) -> None:
    prop = Property("p1", "4732 E Camelback Rd", zip="85018", redfin_url="https://www.redfin.com/AZ/Phoenix")
    assert len(extract(sandbox, prop)) == 3


@pytest.mark.parametrize(
    "prop",
    [
        Property("p12", "1290 E Missouri Ave", city="Phoenix", zip="85014"),  # Redfin has no such address
        Property("p13", "x", redfin_url="https://www.redfin.com/AZ/Phoenix/x/home/99999999"),  # Home not found
        Property("p9", "7015 N Central Ave", city="Phoenix", zip="85020"),  # not listed on Redfin
        Property("p1", "4732 E Camelback Rd", zip="85251"),
    ],  # the street exists, in another zip
)
def test_unknown_home_is_empty_not_an_error(sandbox: SandboxServer, prop: Property) -> None:
    assert extract(sandbox, prop) == []


def test_404_is_not_found(sandbox: SandboxServer) -> None:
    sandbox.fail(ABOVE, 404, 1)
    assert extract(sandbox, BY_URL) == []


@pytest.mark.parametrize(
    "prop", [BLOCKED, Property("p8", "x", redfin_url="https://www.redfin.com/AZ/Phoenix/y/home/27000008")]
)
def test_bot_wall_is_blocked_never_zero_photos(sandbox: SandboxServer, prop: Property) -> None:
    with pytest.raises(SourceError) as info:
        extract(sandbox, prop)
    err = info.value
    assert (err.kind, err.retryable, err.source, err.property_id) == ("blocked", False, "redfin", "p8")
    assert str(err).startswith("redfin: property p8: blocked") and "HTTP 403" in str(err)


def test_challenge_page_with_200_is_blocked(sandbox: SandboxServer) -> None:
    page = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>cf-chl</body></html>"
    sandbox.fail(ABOVE, 200, 1, body=page)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_URL)
    assert info.value.kind == "blocked" and not info.value.retryable


def test_503_twice_then_success(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    sandbox.fail(ABOVE, 503, times=2)
    assert len(extract(sandbox, BY_URL, sleep=sleeps)) == 3
    assert len(sleeps.waits) == 2
    assert calls(sandbox, ABOVE) == 3


def test_503_forever_is_retryable_after_max_retries(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    sandbox.fail("/redfin/", 503, times=100)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_ADDRESS, sleep=sleeps, source_max_retries=1)
    assert info.value.retryable and info.value.kind == "server_error"
    assert calls(sandbox, AUTOCOMPLETE) == 2 and len(sleeps.waits) == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{}&&{"version":586,"errorMessage":"Success","resultCode":0,"payload":{"mediaBrow', "truncated"),
        (b'{}&&{"version":586,"errorMessage":"Success","resultCode":0,"payload":{}}', "mediaBrowserInfo is missing"),
        (b'{}&&{"errorMessage":"Internal error","resultCode":500}', "resultCode is 500"),
    ],
)
def test_bad_body_is_a_permanent_parse_error(sandbox: SandboxServer, body: bytes, why: str) -> None:
    sandbox.fail(ABOVE, 200, 1, body=body)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_URL)
    assert (info.value.kind, info.value.retryable, info.value.property_id) == ("parse", False, "p1")
    assert why in str(info.value)


def test_photo_downloads_as_webp_at_62_5_percent(sandbox: SandboxServer) -> None:
    url = extract(sandbox, BY_URL)[0].url
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(response.content)) as img:
        assert img.format == "WEBP"
        assert img.width == round(0.625 * MASTER[0]) == 640
        assert img.height == round(0.625 * MASTER[1])
