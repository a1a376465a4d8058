"""The nightly planner's pure parts: request costs, priorities, the replication query, listing memory."""

from __future__ import annotations

from datetime import date

import pytest

from homeshots.core.models import Property
from homeshots.sources.mls import build_replication_query, read_replication_page
from managers.listing_memory import ListingMemory, PhotoMemory
from tasks.nightly import NEVER_VISITED, priority, request_cost

TODAY = date(2026, 11, 30)


def memory(visited: str = "2026-11-29", rate: float = 0.0, key: str | None = "K1") -> ListingMemory:
    return ListingMemory(
        visited=visited,
        listing_key=key,
        change_rate=rate,
        photos=(PhotoMemory("key:M1", "a" * 64, etag='"e1"', modified="2026-01-01T00:00:00Z"),),
    )


def test_never_visited_comes_first_then_stale_then_likely_to_change() -> None:
    fresh, stale, lively = memory("2026-11-29"), memory("2026-11-20"), memory("2026-11-29", rate=0.8)
    ranked = sorted(
        [("fresh", fresh), ("stale", stale), ("lively", lively), ("new", None)], key=lambda kv: -priority(kv[1], TODAY)
    )
    assert [name for name, _ in ranked] == ["new", "stale", "lively", "fresh"]
    assert priority(None, TODAY) == NEVER_VISITED


@pytest.mark.parametrize(
    ("source", "prop", "known", "replicated", "cost"),
    [
        ("mls", Property("p", "1 A St"), None, True, 1),
        ("mls", Property("p", "1 A St"), memory(), True, 0),  # tracked and replicated: no request at all
        ("mls", Property("p", "1 A St"), memory(), False, 1),
        ("zillow", Property("p", "1 A St", zpid="7"), None, False, 1),
        ("zillow", Property("p", "1 A St"), None, False, 2),
        ("redfin", Property("p", "1 A St", redfin_url="https://www.redfin.com/AZ/x/home/12"), None, False, 1),
        ("maricopa", Property("p", "1 A St", apn="123-45-678"), None, False, 3),
    ],
)
def test_request_cost(source: str, prop: Property, known: ListingMemory | None, replicated: bool, cost: int) -> None:
    assert request_cost(source, prop, known, replicated) == cost


def test_replication_query_asks_for_changes_in_a_stable_order() -> None:
    query = build_replication_query("2026-11-29T01:00:00Z")
    assert query["$filter"] == "ModificationTimestamp gt 2026-11-29T01:00:00Z"
    assert query["$orderby"] == "ModificationTimestamp,ListingKey" and query["$expand"] == "Media"
    with pytest.raises(ValueError):
        build_replication_query("yesterday')")


def test_replication_page_keeps_listings_and_names_the_broken_ones() -> None:
    page = {
        "value": [
            {"ListingKey": "K1", "ModificationTimestamp": "2026-11-29T02:00:00Z", "Media": []},
            {"ListingKey": 7},
            "junk",
        ],
        "@odata.nextLink": "https://mls.example/Property?$skip=3",
    }
    listings, next_link, next_key, problems = read_replication_page(page, base_url="https://mls.example/Property")
    assert [(c.listing_key, c.modified) for c in listings] == [("K1", "2026-11-29T02:00:00Z")]
    assert next_link == "https://mls.example/Property?$skip=3" and next_key and len(problems) == 2


def test_listing_memory_round_trips_compactly() -> None:
    before = memory(rate=0.5)
    again = ListingMemory.from_json(before.to_json())
    assert again == before and again.by_identity["key:M1"].etag == '"e1"'
    assert len(before.to_json()) < 200, "a photo costs a short JSON row"
    after = before.revisited("2026-11-30", changed=True)
    assert after.visited == "2026-11-30" and after.change_rate == pytest.approx(0.65)
    assert before.revisited("2026-11-30", changed=False).change_rate == pytest.approx(0.35)
