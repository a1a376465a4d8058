"""``SandboxServer(listings, photos)`` keeps its static catalog: same documents, same attributes, no world."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from homeshots_sandbox import Listing, SandboxServer, default_sandbox, generate_photo
from homeshots_sandbox.listing import STAMP

from tests.sandbox.crawl import reso_listings, reso_pages, token


@pytest.fixture
def catalog() -> tuple[list[Listing], dict[str, bytes]]:
    photos = {f"S{i}_{j}.jpg": generate_photo(700 + 10 * i + j, size=(320, 240)) for i in (1, 2) for j in (0, 1)}
    listings = [
        Listing("S1", "1 Static St", "Phoenix", "85001", ["S1_0.jpg", "S1_1.jpg"]),
        Listing("S2", "2 Static St", "Phoenix", "85002", ["S2_0.jpg", "S2_1.jpg"], sources=frozenset({"zillow"})),
    ]
    return listings, photos


@pytest.fixture
def static(catalog: tuple[list[Listing], dict[str, bytes]]) -> Iterator[SandboxServer]:
    with SandboxServer(*catalog, services=["mls"]) as server:
        yield server


def test_attributes_are_the_catalog_given(
    static: SandboxServer, catalog: tuple[list[Listing], dict[str, bytes]]
) -> None:
    listings, photos = catalog
    assert static.world is None
    assert static.listings == listings and isinstance(static.listings, list)
    assert static.photos == photos and isinstance(static.photos, dict)
    assert static.photo_size("S1_0.jpg") == (320, 240)
    assert static.listings_for("mls") == listings[:1]


def test_reso_document_is_unchanged(static: SandboxServer, client: httpx.Client) -> None:
    (doc,) = reso_listings(client, static, {"$filter": "ListingKey eq 'S1'", "$expand": "Media", "$top": "5"})
    media = doc.pop("Media")
    assert doc == {
        "ListingKey": "S1",
        "ListingId": "S1",
        "UnparsedAddress": "1 Static St",
        "City": "Phoenix",
        "PostalCode": "85001",
        "StateOrProvince": "AZ",
        "StandardStatus": "Active",
        "ModificationTimestamp": STAMP,
        "PhotosChangeTimestamp": STAMP,  # new fields, constant in a static catalog
        "ListPrice": 625000,
        "PhotosCount": 2,
    }
    assert [(m["MediaKey"], m["Order"], m["MediaModificationTimestamp"]) for m in media] == [
        ("S1-M1", 1, STAMP),
        ("S1-M2", 2, STAMP),
    ]
    assert [m["MediaURL"] for m in media] == [static.photo_url("S1_0.jpg"), static.photo_url("S1_1.jpg")]


def test_listings_not_on_the_mls_stay_invisible(static: SandboxServer, client: httpx.Client) -> None:
    assert [d["ListingKey"] for d in reso_listings(client, static, {})] == ["S1"]
    assert reso_listings(client, static, {"$filter": "ListingKey eq 'S2'"}) == []
    assert reso_listings(client, static, {"$filter": f"ModificationTimestamp ge {STAMP}"})[0]["ListingKey"] == "S1"


def test_paging_with_top_as_before(static: SandboxServer, client: httpx.Client) -> None:
    static.listings.append(Listing("S3", "3 Static St", "Phoenix", "85001", ["S1_0.jpg"]))  # a plain list, as before
    pages = reso_pages(client, static, {"$top": "10"})  # page_size 1: one listing a page, nextLink to the rest
    assert [[d["ListingKey"] for d in p["value"]] for p in pages] == [["S1"], ["S3"]]
    assert "%24top=9" in pages[0]["@odata.nextLink"]
    headers = {"Authorization": f"Bearer {token(client, static)}"}
    one = client.get(static.mls_base_url + "/Property", params={"$top": "1"}, headers=headers).json()
    assert "@odata.nextLink" not in one


def test_no_world_routes(static: SandboxServer, client: httpx.Client) -> None:
    assert client.post(static.base_url + "/sandbox/advance").status_code == 404
    assert client.get(static.base_url + "/sandbox/truth").status_code == 404


def test_demo_catalog_still_serves(client: httpx.Client) -> None:
    with default_sandbox(None) as server:
        (doc,) = reso_listings(client, server, {"$filter": "ListingKey eq 'PHX1001'", "$expand": "Media", "$top": "9"})
        assert [m["MediaKey"] for m in doc["Media"]] == [f"PHX1001-M{i}" for i in range(1, 5)]
        answer = client.get(doc["Media"][0]["MediaURL"])
        assert answer.status_code == 200 and answer.headers["last-modified"] == "Wed, 01 May 2024 12:00:00 GMT"
        assert (
            client.get(doc["Media"][0]["MediaURL"], headers={"If-None-Match": answer.headers["etag"]}).status_code
            == 304
        )
