"""Every photo route carries a strong ETag and Last-Modified and answers conditional GETs with 304."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest
from homeshots_sandbox import Listing, SandboxServer, World, generate_photo, photo_key

from tests.sandbox.crawl import fetch, redfin_photos, reso_listings, zillow_photos

STATIC_LAST_MODIFIED = "Wed, 01 May 2024 12:00:00 GMT"


@pytest.fixture(scope="module")
def static() -> Iterator[SandboxServer]:
    photos = {
        "v1.jpg": generate_photo(901, size=(640, 480)),
        "v2.jpg": generate_photo(902, size=(640, 480), orientation=6),
    }
    listing = Listing("V1", "1 Valid St", "Phoenix", "85001", list(photos), zpid="1", redfin_id="2")
    with SandboxServer([listing], photos) as server:
        yield server


def _urls(server: SandboxServer) -> list[str]:
    return [
        server.photo_url("v1.jpg"),
        server.variant_url("mls", "v2.jpg", 320),
        server.variant_url("zillow", "v1.jpg", 480),
        server.variant_url("redfin", "v2.jpg", 300, "webp"),
    ]


@pytest.mark.parametrize("route", range(4), ids=["photos", "cdn-mls", "cdn-zillow", "cdn-redfin-webp"])
def test_photo_answers_carry_a_digest_etag_and_last_modified(
    static: SandboxServer, client: httpx.Client, route: int
) -> None:
    response = client.get(_urls(static)[route])
    assert response.status_code == 200
    assert response.headers["etag"] == '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    assert response.headers["last-modified"] == STATIC_LAST_MODIFIED
    assert client.get(_urls(static)[route]).headers["etag"] == response.headers["etag"]  # stable


CASES = [
    ({"If-None-Match": "{etag}"}, 304),
    ({"If-None-Match": "W/{etag}"}, 304),  # weak comparison: W/ ignored
    ({"If-None-Match": '"0000", W/"1111", {etag}'}, 304),
    ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": '"0000", W/"1111"'}, 200),
    ({"If-None-Match": "garbage"}, 200),
    ({"If-Modified-Since": "{lm}"}, 304),
    ({"If-Modified-Since": "{later}"}, 304),
    ({"If-Modified-Since": "{earlier}"}, 200),
    ({"If-Modified-Since": "yesterday-ish"}, 200),
    ({"If-None-Match": '"0000"', "If-Modified-Since": "{later}"}, 200),  # If-None-Match decides alone
    ({"If-None-Match": "{etag}", "If-Modified-Since": "{earlier}"}, 304),
]


@pytest.mark.parametrize(("headers", "status"), CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("route", range(4), ids=["photos", "cdn-mls", "cdn-zillow", "cdn-redfin-webp"])
def test_conditional_get(
    static: SandboxServer, client: httpx.Client, route: int, headers: dict[str, str], status: int
) -> None:
    url = _urls(static)[route]
    first = client.get(url)
    modified = parsedate_to_datetime(first.headers["last-modified"])
    values = {
        "etag": first.headers["etag"],
        "lm": first.headers["last-modified"],
        "later": format_datetime(modified + timedelta(days=3), usegmt=True),
        "earlier": format_datetime(modified - timedelta(seconds=1), usegmt=True),
    }
    sent = {k: v.replace("{etag}", values["etag"]).format(**values) for k, v in headers.items()}
    response = client.get(url, headers=sent)
    assert response.status_code == status
    assert response.headers["etag"] == first.headers["etag"]
    assert response.headers["last-modified"] == first.headers["last-modified"]
    if status == 304:
        assert response.content == b""
        assert "content-length" not in response.headers or response.headers["content-length"] == "0"
    else:
        assert response.content == first.content
    assert client.get(url).status_code == 200  # the connection survives a 304


def test_missing_photo_is_404_without_validators(static: SandboxServer, client: httpx.Client) -> None:
    response = client.get(static.photo_url("nope.jpg"), headers={"If-None-Match": "*"})
    assert response.status_code == 404
    assert "etag" not in response.headers


def test_stats_count_bodies_bytes_and_304s(static: SandboxServer, client: httpx.Client) -> None:
    static.stats.reset()
    full = client.get(static.photo_url("v1.jpg"))
    client.get(static.photo_url("v1.jpg"), headers={"If-None-Match": full.headers["etag"]})
    webp = client.get(static.variant_url("redfin", "v2.jpg", 300, "webp"))
    client.get(static.variant_url("redfin", "v2.jpg", 300, "webp"), headers={"If-Modified-Since": STATIC_LAST_MODIFIED})
    client.head(static.photo_url("v1.jpg"))
    client.get(static.base_url + "/redfin/stingray/do/location-autocomplete?location=1+Valid+St")
    stats = static.stats.as_dict()
    assert stats["bodies"] == 2
    assert stats["body_bytes"] == len(full.content) + len(webp.content)
    assert stats["not_modified"] == 2
    assert stats["photo_bodies"] == {"photos": 1, "cdn/redfin": 1}
    assert stats["photo_not_modified"] == {"photos": 1, "cdn/redfin": 1}
    assert stats["requests"] == {"/photos/": 3, "/cdn/": 2, "/redfin/stingray/do/location-autocomplete": 1}
    assert stats["api_requests"] == 1


# --- a world: a photo changed in place keeps its URL but not its validators ------------------------------------


def test_changed_in_place_photo_answers_200_with_new_validators_under_the_same_url(client: httpx.Client) -> None:
    world = World(12, seed=21, change_fraction=0.5)
    with world.server() as server:
        before = _source_urls(client, server)
        old = {url: fetch(client, url) for urls in before.values() for url in urls}
        truth = world.advance()
        assert truth.totals()["changed"] >= 1
        after = _source_urls(client, server)
        for key, listing in truth.listings.items():
            for source in ("mls", "zillow", "redfin"):
                if source not in listing.by_source:
                    continue
                delta = listing.by_source[source]
                for url in before[(key, source)]:
                    identity, previous = photo_key(url), old[url]
                    answer = fetch(client, url, If_None_Match=previous.etag or "")
                    since = fetch(client, url, If_Modified_Since=previous.last_modified or "")
                    if identity in delta.changed:
                        assert url in after[(key, source)]  # same URL
                        assert answer.status == since.status == 200
                        assert answer.etag != previous.etag and answer.sha256 != previous.sha256
                        assert parsedate_to_datetime(answer.last_modified or "") > parsedate_to_datetime(
                            previous.last_modified or ""
                        )
                        assert fetch(client, url, If_None_Match=answer.etag or "").status == 304
                    elif identity in delta.unchanged:
                        assert (answer.status, answer.etag, since.status) == (304, previous.etag, 304)
                    else:  # gone tonight: removed, replaced or re-encoded under a new URL
                        assert identity in delta.disappeared
                        assert answer.status == 404 and url not in after[(key, source)]


def _source_urls(client: httpx.Client, server: SandboxServer) -> dict[tuple[str, str], list[str]]:
    urls = {}
    for doc in reso_listings(client, server, {"$expand": "Media"}):
        urls[(doc["ListingKey"], "mls")] = [m["MediaURL"] for m in doc["Media"]]
    for listing in server.listings:
        if "zillow" in listing.sources:
            urls[(listing.listing_key, "zillow")] = zillow_photos(client, server, listing.slug, listing.zpid or "")[1]
        if "redfin" in listing.sources:
            urls[(listing.listing_key, "redfin")] = redfin_photos(client, server, listing.redfin_id or "")[1]
    return urls
