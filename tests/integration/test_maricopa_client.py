"""The Maricopa County Assessor client over real HTTP against the local sandbox (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
from collections.abc import Iterator

import httpx
import imagehash
import pytest
from homeshots_sandbox import Listing, SandboxServer, generate_photo
from homeshots_sandbox.catalog import CATALOG
from homeshots_sandbox.maricopa import render_sketch
from PIL import Image

from homeshots.core.errors import SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.core.settings import Settings
from homeshots.sources.maricopa import MaricopaExtractor
from tests.integration.helpers import Sleeps

# A real SourceLimiter (homeshots/politeness.py) needs Redis; the limiter is exercised elsewhere.


def _listings() -> list[Listing]:
    blocked = Listing("PHX1004", "910 E Osborn Rd", "Phoenix", "85014", ["d.jpg"], apn="118-04-031")
    blocked.blocked = frozenset({"maricopa"})
    return [
        Listing("PHX1001", "4732 E Camelback Rd", "Phoenix", "85018", ["a.jpg"], apn="17310005A", sketches=3),
        Listing("PHX1002", "1824 W Palm Ln", "Phoenix", "85007", ["b.jpg"], apn="11124062"),
        Listing("PHX1003", "3311 N 44th St", "Phoenix", "85018", ["c.jpg"]),  # no APN: unknown to the assessor
        blocked,
        Listing("PHX1005", "2245 E Highland Ave", "Phoenix", "85016", [], apn="17018097", sketches=0),
    ]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    photos = {name: generate_photo(i, size=(64, 48)) for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "d.jpg"])}
    with SandboxServer(_listings(), photos, services=["maricopa"]) as server:
        yield server


def settings_for(sb: SandboxServer, **overrides: object) -> Settings:
    env = sb.env()
    values: dict[str, object] = {
        "maricopa_base_url": env["HOMESHOTS_MARICOPA_BASE_URL"],
        "maricopa_token": env["HOMESHOTS_MARICOPA_TOKEN"],
        "source_max_retries": 3,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


def extract(sb: SandboxServer, prop: Property, *, sleep: Sleeps | None = None, **kw: object) -> list[ImageRef]:
    async def run() -> list[ImageRef]:
        async with httpx.AsyncClient() as client:
            extractor = MaricopaExtractor(client, settings_for(sb, **kw), sleep=sleep or Sleeps())
            return await extractor.extract(prop)

    return asyncio.run(run())


def failure(sb: SandboxServer, prop: Property, **kw: object) -> SourceError:
    with pytest.raises(SourceError) as info:
        extract(sb, prop, **kw)
    return info.value


def paths(sb: SandboxServer) -> list[str]:
    return [p for _, p in sb.request_log]


def image(ref: ImageRef) -> Image.Image:
    assert ref.data is not None
    with Image.open(io.BytesIO(ref.data)) as img:
        assert img.format == "PNG"
        img.load()
        return img


CAMELBACK = Property("p1", "4732 E Camelback Rd", city="Phoenix", zip="85018", apn="173-10-005a")
PALM = Property("p2", "1824 W Palm Ln", city="Phoenix", zip="85007")


def test_sandbox_env_points_at_the_service(sandbox: SandboxServer) -> None:
    env = sandbox.env()
    assert env["HOMESHOTS_SOURCES"] == "maricopa"
    assert env["HOMESHOTS_MARICOPA_BASE_URL"] == sandbox.base_url + "/maricopa"
    assert env["HOMESHOTS_MARICOPA_TOKEN"]


def test_by_apn_skips_the_search_and_pages_through_sketches(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, CAMELBACK)
    assert [(r.source, r.order, r.key, r.url) for r in refs] == [
        ("maricopa", i, f"17310005A-sketch-{i + 1}", None) for i in range(3)
    ]
    assert all(image(r).size == (800, 600) for r in refs)
    sketches = "/maricopa/parcel/17310005A/sketches/"
    assert paths(sandbox) == ["/maricopa/parcel/17310005A", sketches, sketches]  # 3 pages, 2 per answer


def test_by_address_search(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, PALM)
    assert [r.key for r in refs] == ["11124062-sketch-1"]
    assert image(refs[0]).mode in ("RGB", "P", "L")
    assert paths(sandbox)[0] == "/maricopa/search/property/"


def test_sketches_are_served_deterministically(sandbox: SandboxServer) -> None:
    first = extract(sandbox, CAMELBACK)
    again = extract(sandbox, CAMELBACK)
    assert [r.data for r in first] == [r.data for r in again]
    assert first[0].data == render_sketch("17310005A", 1)


@pytest.mark.parametrize(
    "prop",
    [
        Property("p3", "1 Nowhere Rd", city="Phoenix", zip="85001"),  # no search hit
        Property("p4", "3311 N 44th St", city="Phoenix", zip="85018"),  # listed, but no APN: unknown to the assessor
        Property("p5", "1824 W Palm Ln", city="Phoenix", zip="85099"),  # the street matches, the zip does not
        Property("p6", "4732 E Camelback Rd", apn="999-99-999"),  # no such parcel: 404
        Property("p7", "2245 E Highland Ave", apn="17018097"),  # a parcel without sketches
    ],
)
def test_not_found_is_empty_not_a_failure(sandbox: SandboxServer, prop: Property) -> None:
    assert extract(sandbox, prop) == []


def test_wrong_token_is_permanent_unauthorized(sandbox: SandboxServer) -> None:
    err = failure(sandbox, CAMELBACK, maricopa_token="not-the-token")
    assert (err.kind, err.retryable, err.source, err.property_id) == ("unauthorized", False, "maricopa", "p1")
    assert "not-the-token" not in str(err)
    assert len(sandbox.request_log) == 1  # a refused token is not retried


def test_missing_token_fails_before_any_request(sandbox: SandboxServer) -> None:
    err = failure(sandbox, CAMELBACK, maricopa_token="")
    assert not err.retryable and "HOMESHOTS_MARICOPA_TOKEN is not set" in str(err)
    assert sandbox.request_log == []


def test_bad_apn_in_the_row_is_an_input_error(sandbox: SandboxServer) -> None:
    err = failure(sandbox, Property("p8", "4732 E Camelback Rd", apn="17-3100-05"))
    assert (err.kind, err.retryable) == ("input", False) and "17-3100-05" in str(err)


@pytest.mark.parametrize(
    "prop",
    [
        Property("p9", "910 E Osborn Rd", city="Phoenix", zip="85014"),  # the search answers HTML
        Property("p10", "910 E Osborn Rd", apn="118-04-031"),  # the parcel answers HTML
    ],
)
def test_html_answer_is_a_parse_failure(sandbox: SandboxServer, prop: Property) -> None:
    err = failure(sandbox, prop)
    assert (err.kind, err.retryable) == ("parse", False)
    assert f"maricopa: property {prop.property_id}: expected JSON, got HTML (HTTP 200 from" in str(err)


def test_503_twice_then_success(sandbox: SandboxServer) -> None:
    sandbox.fail("/maricopa/parcel/", 503, times=2)
    sleeps = Sleeps()
    refs = extract(sandbox, CAMELBACK, sleep=sleeps)
    assert len(refs) == 3 and len(sleeps.waits) == 2
    assert paths(sandbox)[:3] == ["/maricopa/parcel/17310005A"] * 3


def test_503_past_the_retries_is_retryable(sandbox: SandboxServer) -> None:
    sandbox.fail("/maricopa/search/", 503, times=10)
    err = failure(sandbox, PALM, source_max_retries=2)
    assert (err.kind, err.retryable) == ("server_error", True)
    assert len(sandbox.request_log) == 3


def test_html_with_200_on_the_sketches_is_a_parse_failure(sandbox: SandboxServer) -> None:
    page = b"<!DOCTYPE html><html><body><h1>Server Error in '/' Application.</h1></body></html>"
    sandbox.fail("/maricopa/parcel/17310005A/sketches/", 200, times=1, body=page)
    err = failure(sandbox, CAMELBACK)
    assert err.kind == "parse" and "expected JSON, got HTML" in str(err) and "/sketches/" in str(err)


def test_answer_short_of_its_total_keeps_what_came(sandbox: SandboxServer) -> None:
    one = {"Sketch": base64.b64encode(render_sketch("17310005A", 1)).decode(), "PageNum": 1, "APN": "17310005A"}
    short = json.dumps({"TotalPages": 5, "Pages": [one]}).encode()
    sandbox.fail("/maricopa/parcel/17310005A/sketches/", 200, times=2, body=short)
    refs = extract(sandbox, CAMELBACK)
    assert [r.key for r in refs] == ["17310005A-sketch-1"]
    assert paths(sandbox).count("/maricopa/parcel/17310005A/sketches/") == 2  # stops once an answer adds nothing


def test_different_parcels_sketches_are_far_apart(sandbox: SandboxServer) -> None:
    camelback = [imagehash.phash(image(r)) for r in extract(sandbox, CAMELBACK)]
    palm = [imagehash.phash(image(r)) for r in extract(sandbox, PALM)]
    assert min(a - b for a in camelback for b in palm) > 12
    assert min(a - b for a, b in itertools.combinations(camelback, 2)) > 12  # pages of one parcel differ too


def test_demo_catalog_sketches_are_far_apart() -> None:
    """Every parcel of the demo catalog against every other, three pages each: dedup must keep them all."""
    hashes = {
        (apn, page): imagehash.phash(Image.open(io.BytesIO(render_sketch(apn, page))))
        for _, _, _, apn in CATALOG
        for page in (1, 2, 3)
    }
    closest = min(hashes[a] - hashes[b] for a, b in itertools.combinations(hashes, 2) if a[0] != b[0])
    assert closest > 12
