"""RESO replication over real HTTP: what changed after a timestamp, in order, paged by ``@odata.nextLink``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from homeshots_sandbox import SandboxServer, World
from homeshots_sandbox.snapshot import odata_time

from tests.sandbox.crawl import reso_listings, reso_pages, token

PAGE = 3
ORDER = "ModificationTimestamp,ListingKey"


@pytest.fixture(scope="module")
def world() -> World:
    world = World(24, seed=5, change_fraction=0.25, photos_per_listing=(2, 5), absent_fraction=0.2)
    for _ in range(3):
        world.advance()
    return world


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[SandboxServer]:
    with world.server(page_size=PAGE, services=["mls"]) as server:
        yield server


def _latest(world: World) -> dict[str, tuple[str, str]]:
    """ListingKey -> (ModificationTimestamp, PhotosChangeTimestamp) of MLS listings, as the truth has them."""
    truth = world.truth()
    return {
        k: (t.modification_timestamp, t.photos_change_timestamp)
        for k, t in truth.listings.items()
        if "mls" in t.sources
    }


def _expected(world: World, after: datetime, inclusive: bool = False) -> list[str]:
    rows = [(ts, k) for k, (ts, _) in _latest(world).items()]
    keep = [
        (ts, k)
        for ts, k in rows
        if (datetime.fromisoformat(ts) >= after if inclusive else datetime.fromisoformat(ts) > after)
    ]
    return [k for _, k in sorted(keep)]


def test_the_world_has_listings_the_mls_does_not_know(world: World) -> None:
    off_mls = [t for t in world.truth().listings.values() if "mls" not in t.sources]
    assert off_mls and any(world.truth(n).listings[t.listing_key].modified for t in off_mls for n in range(1, 4))


@pytest.mark.parametrize("night", [1, 2, 3])
def test_modified_after_a_night_start_exactly_in_order_and_paged(
    world: World, server: SandboxServer, client: httpx.Client, night: int
) -> None:
    since = world.night_start(night)
    flt = f"ModificationTimestamp gt {odata_time(since)}"
    pages = reso_pages(client, server, {"$filter": flt, "$orderby": ORDER, "$expand": "Media"})
    docs = [doc for page in pages for doc in page["value"]]
    assert [d["ListingKey"] for d in docs] == _expected(world, since)
    assert docs, "the nights changed something"
    assert all(len(p["value"]) <= PAGE for p in pages)
    assert len(pages) == max(1, -(-len(docs) // PAGE))
    assert all("@odata.nextLink" in p for p in pages[:-1]) and "@odata.nextLink" not in pages[-1]
    latest = _latest(world)
    for doc in docs:  # timestamps as the truth has them; Media carries identities and their own timestamps
        assert (doc["ModificationTimestamp"], doc["PhotosChangeTimestamp"]) == latest[doc["ListingKey"]]
        truth = world.truth().listings[doc["ListingKey"]]
        assert [m["MediaKey"] for m in doc["Media"]] == list(truth.photos)
        assert [m["Order"] for m in doc["Media"]] == list(range(1, len(truth.photos) + 1))
        assert {m["MediaKey"]: m["MediaModificationTimestamp"] for m in doc["Media"]} == truth.photo_timestamps


def test_changed_keys_of_the_last_night_are_what_replication_returns(
    world: World, server: SandboxServer, client: httpx.Client
) -> None:
    """A client that saw everything up to night 2 asks for what changed since its high-water mark."""
    mark = max(datetime.fromisoformat(t.modification_timestamp) for t in world.truth(2).listings.values())
    docs = reso_listings(client, server, {"$filter": f"ModificationTimestamp gt {odata_time(mark)}", "$orderby": ORDER})
    mls_changed = [k for k in world.truth(3).changed_keys() if "mls" in world.truth(3).listings[k].sources]
    assert [d["ListingKey"] for d in docs] == mls_changed


def test_ge_includes_the_bound_and_combines_with_eq(world: World, server: SandboxServer, client: httpx.Client) -> None:
    key, (stamp, _) = sorted(_latest(world).items(), key=lambda kv: kv[1][0])[len(_latest(world)) // 2]
    moment = datetime.fromisoformat(stamp)
    ge = reso_listings(client, server, {"$filter": f"ModificationTimestamp ge {stamp}", "$orderby": ORDER})
    assert [d["ListingKey"] for d in ge] == _expected(world, moment, inclusive=True)
    assert key in [d["ListingKey"] for d in ge]
    gt = reso_listings(client, server, {"$filter": f"ModificationTimestamp gt {stamp}", "$orderby": ORDER})
    assert key not in [d["ListingKey"] for d in gt]
    both = f"ModificationTimestamp ge {stamp} and ListingKey eq '{key}'"
    assert [d["ListingKey"] for d in reso_listings(client, server, {"$filter": both})] == [key]
    earlier = odata_time(moment + timedelta(seconds=1))
    none = f"ListingKey eq '{key}' and ModificationTimestamp gt {earlier}"
    assert reso_listings(client, server, {"$filter": none}) == []


def test_offsets_and_fractions_in_the_literal(world: World, server: SandboxServer, client: httpx.Client) -> None:
    since = world.night_start(2)
    local = since.astimezone(timezone(timedelta(hours=-7))).isoformat()  # Arizona time
    fractional = since.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for literal in (local, fractional):
        docs = reso_listings(client, server, {"$filter": f"ModificationTimestamp gt {literal}", "$orderby": ORDER})
        assert [d["ListingKey"] for d in docs] == _expected(world, since)


def test_orderby_directions(world: World, server: SandboxServer, client: httpx.Client) -> None:
    docs = reso_listings(client, server, {"$orderby": "ModificationTimestamp desc,ListingKey asc"})
    rows = [(d["ModificationTimestamp"], d["ListingKey"]) for d in docs]
    assert rows == sorted(rows, key=lambda r: (-datetime.fromisoformat(r[0]).timestamp(), r[1]))
    assert len(rows) == len(_latest(world))
    asc = reso_listings(client, server, {"$orderby": "ModificationTimestamp asc"})
    assert [d["ModificationTimestamp"] for d in asc] == sorted(d["ModificationTimestamp"] for d in asc)


def test_top_caps_the_total_across_pages(world: World, server: SandboxServer, client: httpx.Client) -> None:
    pages = reso_pages(client, server, {"$orderby": ORDER, "$top": "7"})
    keys = [d["ListingKey"] for p in pages for d in p["value"]]
    assert len(keys) == 7 and len(pages) == 3
    everything = [d["ListingKey"] for d in reso_listings(client, server, {"$orderby": ORDER})]
    assert keys == everything[:7]


def test_photos_change_timestamp_filter(world: World, server: SandboxServer, client: httpx.Client) -> None:
    since = world.night_start(1)
    docs = reso_listings(client, server, {"$filter": f"PhotosChangeTimestamp gt {odata_time(since)}"})
    want = {k for k, (_, photos) in _latest(world).items() if datetime.fromisoformat(photos) > since}
    assert {d["ListingKey"] for d in docs} == want


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "ModificationTimestamp gt '2024-05-01T00:00:00Z'"},  # DateTimeOffset literals are unquoted
        {"$filter": "ModificationTimestamp gt yesterday"},
        {"$filter": "ListPrice gt 5"},
        {"$filter": "ModificationTimestamp gt 2024-13-45T00:00:00Z"},
        {"$orderby": "ListPrice"},
        {"$orderby": "ModificationTimestamp sideways"},
    ],
)
def test_unsupported_queries_are_400(server: SandboxServer, client: httpx.Client, params: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {token(client, server)}"}
    response = client.get(server.mls_base_url + "/Property", params=params, headers=headers)
    assert response.status_code == 400, response.text
