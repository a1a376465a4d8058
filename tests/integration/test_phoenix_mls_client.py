"""The Phoenix MLS client over real HTTP against the local sandbox (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from homeshots_sandbox import Listing, SandboxServer, generate_photo

from homeshots.core.errors import SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.core.settings import Settings
from homeshots.sources.mls import MlsExtractor, TokenCache
from tests.integration.helpers import Sleeps

PROPERTY = "/reso/odata/Property"
SMALL = (64, 48)


def _listings() -> list[Listing]:
    return [
        Listing("PHX1001", "4732 E Camelback Rd", "Phoenix", "85018", ["a1.jpg", "a2.jpg", "a3.jpg"]),
        Listing("PHX1010", "4411 N 40th St", "Phoenix", "85018", ["b1.jpg", "b2.jpg"]),
        # an older listing of the same house (relisted): the address matches twice
        Listing("PHX0900", "4411 N 40th St", "Phoenix", "85018", ["c1.jpg"]),
    ]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    names = ["a1.jpg", "a2.jpg", "a3.jpg", "b1.jpg", "b2.jpg", "c1.jpg"]
    photos = {name: generate_photo(i, size=SMALL) for i, name in enumerate(names)}
    with SandboxServer(_listings(), photos, page_size=1) as server:
        yield server


def settings_for(sb: SandboxServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "mls_base_url": sb.mls_base_url,
        "mls_token_url": sb.token_url,
        "mls_client_id": sb.client_id,
        "mls_client_secret": sb.client_secret,
        "mls_max_retries": 3,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def extract(
    sb: SandboxServer, prop: Property, *, tokens: TokenCache | None = None, sleep: Sleeps | None = None, **kw: object
) -> list[ImageRef]:
    async def run() -> list[ImageRef]:
        async with httpx.AsyncClient() as client:
            extractor = MlsExtractor(client, settings_for(sb, **kw), tokens or TokenCache(), sleep=sleep or Sleeps())
            return await extractor.extract(prop)

    return asyncio.run(run())


def calls(sb: SandboxServer, path: str) -> int:
    return sum(1 for _, p in sb.request_log if p == path)


BY_KEY = Property("p1", "4732 E Camelback Rd", city="Phoenix", zip="85018", mls_listing_key="PHX1001")
BY_ADDRESS = Property("p10", "4411 n 40th st", city="Phoenix", zip="85018")


def test_listing_key_lookup_returns_photos_in_order(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_KEY)
    assert [r.url for r in refs] == [sandbox.photo_url(n) for n in ("a1.jpg", "a2.jpg", "a3.jpg")]
    assert [r.order for r in refs] == [0, 1, 2]
    assert [r.key for r in refs] == ["PHX1001-M1", "PHX1001-M2", "PHX1001-M3"]
    assert {(r.source, r.declared_width, r.declared_height) for r in refs} == {("mls", 64, 48)}


def test_address_lookup_pages_through_next_link(sandbox: SandboxServer) -> None:
    """Two listings match the address and the sandbox pages one listing at a time."""
    refs = extract(sandbox, BY_ADDRESS)
    assert [r.url for r in refs] == [sandbox.photo_url(n) for n in ("b1.jpg", "b2.jpg", "c1.jpg")]
    assert [r.order for r in refs] == [0, 1, 2]
    assert calls(sandbox, PROPERTY) == 2


def test_address_lookup_by_city_without_zip(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, Property("p2", "4732 E Camelback Rd", city="phoenix"))
    assert len(refs) == 3


def test_max_pages_stops_paging(sandbox: SandboxServer) -> None:
    refs = extract(sandbox, BY_ADDRESS, mls_max_pages=1)
    assert len(refs) == 2
    assert calls(sandbox, PROPERTY) == 1


def test_no_listing_is_empty_not_an_error(sandbox: SandboxServer) -> None:
    assert extract(sandbox, Property("p12", "1290 E Missouri Ave", zip="85014")) == []
    assert extract(sandbox, Property("p13", "x", mls_listing_key="PHX9999")) == []
    sandbox.fail(PROPERTY, 404, 1)
    assert extract(sandbox, BY_KEY) == []


def test_token_is_cached_across_extractions(sandbox: SandboxServer) -> None:
    tokens = TokenCache()
    extract(sandbox, BY_KEY, tokens=tokens)
    extract(sandbox, BY_KEY, tokens=tokens)
    assert calls(sandbox, "/oauth2/token") == 1


def test_401_once_refreshes_the_token(sandbox: SandboxServer) -> None:
    tokens = TokenCache()
    extract(sandbox, BY_KEY, tokens=tokens)
    sandbox.fail(PROPERTY, 401, 1)
    refs = extract(sandbox, BY_KEY, tokens=tokens)
    assert len(refs) == 3
    assert calls(sandbox, "/oauth2/token") == 2


def test_401_twice_is_permanent_unauthorized(sandbox: SandboxServer) -> None:
    sandbox.fail(PROPERTY, 401, 2)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY)
    assert not info.value.retryable
    assert "unauthorized" in str(info.value)


def test_wrong_secret_is_permanent_and_never_leaks(sandbox: SandboxServer) -> None:
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY, mls_client_secret="not-the-secret")
    assert not info.value.retryable
    assert (info.value.source, info.value.property_id) == ("mls", "p1")
    assert "HTTP 401" in str(info.value)
    assert "not-the-secret" not in str(info.value)
    assert calls(sandbox, PROPERTY) == 0


def test_429_waits_retry_after_then_succeeds(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    sandbox.fail(PROPERTY, 429, 1, retry_after="7")
    assert len(extract(sandbox, BY_KEY, sleep=sleeps)) == 3
    assert sleeps.waits == [7.0]


def test_429_retry_after_http_date_is_capped(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    sandbox.fail(PROPERTY, 429, 1, retry_after=later)
    assert len(extract(sandbox, BY_KEY, sleep=sleeps)) == 3
    assert sleeps.waits == [120.0]


def test_503_twice_then_success_backs_off(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    sandbox.fail(PROPERTY, 503, 2)
    assert len(extract(sandbox, BY_KEY, sleep=sleeps)) == 3
    assert len(sleeps.waits) == 2
    assert 0.25 <= sleeps.waits[0] <= 0.5 and 0.5 <= sleeps.waits[1] <= 1.0


def test_500_forever_is_retryable_after_max_retries(sandbox: SandboxServer) -> None:
    sleeps = Sleeps()
    sandbox.fail(PROPERTY, 500, 100)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY, sleep=sleeps, mls_max_retries=2)
    assert info.value.retryable
    assert "HTTP 500" in str(info.value) and PROPERTY in str(info.value)
    assert calls(sandbox, PROPERTY) == 3 and len(sleeps.waits) == 2


@pytest.mark.parametrize(
    "body", [b"<!DOCTYPE html><html><body>Please log in</body></html>", b'{"value": [{"ListingKey": "PH']
)
def test_html_or_truncated_body_is_permanent(sandbox: SandboxServer, body: bytes) -> None:
    sandbox.fail(PROPERTY, 200, 1, body=body)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY)
    assert not info.value.retryable
    assert str(info.value).startswith("mls: property p1: expected JSON")


def test_bad_shape_is_permanent_source_error(sandbox: SandboxServer) -> None:
    sandbox.fail(PROPERTY, 200, 1, body=b'{"value": [{"Media": [{"MediaURL": "u", "Order": "abc"}]}]}')
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY)
    assert not info.value.retryable
    assert "value[0].Media[0].Order is not a number" in str(info.value)


def test_other_4xx_is_permanent(sandbox: SandboxServer) -> None:
    sandbox.fail(PROPERTY, 403, 1)
    with pytest.raises(SourceError) as info:
        extract(sandbox, BY_KEY)
    assert not info.value.retryable and "HTTP 403" in str(info.value)
