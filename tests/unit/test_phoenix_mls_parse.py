"""The pure half of the Phoenix MLS extractor: OData query building and RESO response parsing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from homeshots.core.errors import ParseError
from homeshots.core.models import Property
from homeshots.sources.mls import (
    build_property_query,
    link_key,
    parse_property_page,
    parse_token_response,
    read_property_page,
)

CDN = "https://cdn.mls.example"

# Shape recorded from a RESO Web API 2.0 server: OData annotations, Media expanded, one listing.
RECORDED = """
{
  "@odata.context": "https://api.mls.example/reso/odata/$metadata#Property(Media())",
  "value": [
    {
      "@odata.id": "https://api.mls.example/reso/odata/Property('PHX1001')",
      "ListingKey": "PHX1001",
      "ListingId": "6612345",
      "UnparsedAddress": "4732 E Camelback Rd",
      "City": "Phoenix",
      "StateOrProvince": "AZ",
      "PostalCode": "85018",
      "StandardStatus": "Active",
      "ModificationTimestamp": "2024-05-01T12:00:00Z",
      "Media": [
        {"MediaKey": "M-3", "MediaURL": "https://cdn.mls.example/3.jpg", "Order": 3,
         "MediaCategory": "Photo", "MediaType": "image/jpeg", "ImageWidth": 2048, "ImageHeight": 1536,
         "MediaModificationTimestamp": "2024-05-01T12:00:00Z", "ResourceRecordKey": "PHX1001"},
        {"MediaKey": "M-1", "MediaURL": "https://cdn.mls.example/1.jpg", "Order": 1,
         "MediaCategory": "Photo", "MediaType": "image/jpeg", "ImageWidth": 2048, "ImageHeight": 1536,
         "MediaModificationTimestamp": "2024-05-01T12:00:00Z", "ResourceRecordKey": "PHX1001"},
        {"MediaKey": "M-FP", "MediaURL": "https://cdn.mls.example/floorplan.pdf", "Order": 2,
         "MediaCategory": "FloorPlan", "MediaType": "pdf"},
        {"MediaKey": "M-VT", "MediaURL": "https://tours.example/abc", "Order": 4,
         "MediaCategory": "VirtualTour", "MediaType": null},
        {"MediaKey": "M-V", "MediaURL": "https://cdn.mls.example/walk.mp4", "Order": 5,
         "MediaCategory": "Video", "MediaType": "video/mp4"},
        {"MediaKey": "M-D", "MediaURL": "https://cdn.mls.example/hoa.pdf", "Order": 6,
         "MediaCategory": "Document", "MediaType": "application/pdf"},
        {"MediaKey": "M-2", "MediaURL": "https://cdn.mls.example/2.jpg", "Order": 2,
         "MediaCategory": "Photos", "MediaType": "jpeg", "ImageWidth": "1024", "ImageHeight": "768"},
        {"MediaKey": "M-X", "MediaURL": "https://cdn.mls.example/x.jpg", "MediaType": "image/jpeg"},
        {"MediaKey": "M-NOURL", "Order": 0, "MediaCategory": "Photo", "MediaType": "image/jpeg"},
        {"MediaKey": "M-1-again", "MediaURL": "https://cdn.mls.example/1.jpg", "Order": 7,
         "MediaCategory": "Photo"}
      ]
    }
  ],
  "@odata.nextLink": "https://api.mls.example/reso/odata/Property?$skip=1&$top=1"
}
"""


def recorded() -> dict[str, Any]:
    return json.loads(RECORDED)


def test_recorded_page_gives_photos_in_order_and_next_link() -> None:
    refs, next_link = parse_property_page(recorded(), property_id="p1")
    assert [r.url for r in refs] == [f"{CDN}/1.jpg", f"{CDN}/2.jpg", f"{CDN}/3.jpg", f"{CDN}/x.jpg"]
    assert [r.order for r in refs] == [0, 1, 2, 3]
    assert [r.key for r in refs] == ["M-1", "M-2", "M-3", "M-X"]
    assert {r.source for r in refs} == {"mls"}
    assert (refs[0].declared_width, refs[0].declared_height) == (2048, 1536)
    assert (refs[1].declared_width, refs[1].declared_height) == (1024, 768)  # numeric strings accepted
    assert refs[3].declared_width is None
    assert next_link == "https://api.mls.example/reso/odata/Property?$skip=1&$top=1"


def test_missing_order_goes_last_and_keeps_source_order() -> None:
    media = [
        {"MediaURL": "u/a", "MediaCategory": "Photo"},
        {"MediaURL": "u/b", "MediaCategory": "Photo", "Order": 2},
        {"MediaURL": "u/c", "MediaCategory": "Photo"},
        {"MediaURL": "u/d", "MediaCategory": "Photo", "Order": 1.0},
    ]
    refs, next_link = parse_property_page({"value": [{"Media": media}]}, property_id="p1")
    assert [r.url for r in refs] == ["u/d", "u/b", "u/a", "u/c"]
    assert next_link is None


def test_photos_of_every_listing_are_returned_once() -> None:
    page = {
        "value": [
            {"ListingKey": "A", "Media": [{"MediaURL": "u/1", "MediaCategory": "Photo", "Order": 1}]},
            {"ListingKey": "B", "Media": [{"MediaURL": "u/1", "MediaCategory": "Photo", "Order": 1},
                                          {"MediaURL": "u/2", "MediaCategory": "Photo", "Order": 2}]},
            {"ListingKey": "C", "Media": []},
            {"ListingKey": "D"},
        ]
    }  # fmt: skip
    refs, _ = parse_property_page(page, property_id="p1")
    assert [(r.url, r.order) for r in refs] == [("u/1", 0), ("u/2", 1)]


@pytest.mark.parametrize(
    ("category", "media_type", "kept"),
    [
        ("Photo", "image/jpeg", True),
        ("photos", None, True),
        (None, "image/png", True),
        (None, "jpeg", True),
        (None, None, False),
        (None, "video/mp4", False),
        ("Photo", "video/mp4", False),
        ("FloorPlan", "image/jpeg", False),
        ("Floor Plan", "jpeg", False),
        ("VirtualTour", None, False),
        ("BrandedVirtualTour", None, False),
        ("Video", "video/mp4", False),
        ("Document", "application/pdf", False),
    ],
)
def test_only_photos_are_kept(category: str | None, media_type: str | None, kept: bool) -> None:
    item = {"MediaURL": "https://cdn.example/m", "MediaCategory": category, "MediaType": media_type}
    refs, _ = parse_property_page({"value": [{"Media": [item]}]}, property_id="p1")
    assert bool(refs) is kept


def test_empty_value_is_no_listing() -> None:
    assert parse_property_page({"@odata.context": "x", "value": []}, property_id="p1") == ([], None)


def _break(path: list[str | int], value: object) -> dict[str, Any]:
    """The recorded payload with the field at ``path`` replaced by a wrong value."""
    doc = recorded()
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


def _bad_media(i: int, field: str, value: object) -> dict[str, Any]:
    return _break(["value", 0, "Media", i, field], value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "RESO response: body is not a JSON object"),
        ("<html>", "RESO response: body is not a JSON object"),
        (None, "RESO response: body is not a JSON object"),
        ({"@odata.context": "x"}, "RESO response: value is missing"),
        ({"value": {"ListingKey": "A"}}, "RESO response: value is not a list"),
        ({"value": None}, "RESO response: value is not a list"),
        (_break(["@odata.nextLink"], 2), "RESO response: @odata.nextLink is not a string"),
        (_break(["@odata.nextLink"], "https://[::1/x"), "RESO response: @odata.nextLink is not a URL"),
        (_break(["@odata.nextLink"], "https://h/x\r\nHost: evil"), "@odata.nextLink has a control character"),
    ],
)
def test_malformed_envelope_is_a_parse_error_naming_the_field(payload: object, message: str) -> None:
    for parse in (parse_property_page, read_property_page):
        with pytest.raises(ParseError) as info:
            parse(copy.deepcopy(payload), property_id="p1")
        assert message in str(info.value)


@pytest.mark.parametrize(
    ("payload", "path", "message"),
    [
        (_break(["value", 0, "Media", 2], "photo.jpg"), "value[0].Media[2]", "value[0].Media[2] is not an object"),
        (_bad_media(2, "Order", "abc"), "value[0].Media[2]", "RESO response: value[0].Media[2].Order is not a number"),
        (_bad_media(1, "Order", True), "value[0].Media[1]", "value[0].Media[1].Order is not a number"),
        (_bad_media(0, "Order", 1.5), "value[0].Media[0]", "value[0].Media[0].Order is not a number"),
        (_bad_media(0, "Order", "\u0661\u0662"), "value[0].Media[0]", "value[0].Media[0].Order is not a number"),
        (_bad_media(0, "Order", "9" * 5000), "value[0].Media[0]", "value[0].Media[0].Order is not a number"),
        (_bad_media(0, "Order", 2**70), "value[0].Media[0]", "value[0].Media[0].Order is not a number"),
        (_bad_media(0, "Order", 1e300), "value[0].Media[0]", "value[0].Media[0].Order is not a number"),
        (_bad_media(0, "MediaURL", 42), "value[0].Media[0]", "value[0].Media[0].MediaURL is not a string"),
        (_bad_media(0, "MediaURL", ["u"]), "value[0].Media[0]", "value[0].Media[0].MediaURL is not a string"),
        (_bad_media(0, "MediaURL", "http://[::1/x"), "value[0].Media[0]", "value[0].Media[0].MediaURL is not a URL"),
        (_bad_media(0, "MediaURL", "u/" + "x" * 9000), "value[0].Media[0]", "MediaURL is longer than 8192"),
        (_bad_media(0, "MediaCategory", {}), "value[0].Media[0]", "value[0].Media[0].MediaCategory is not a string"),
        (_bad_media(0, "MediaType", 1), "value[0].Media[0]", "value[0].Media[0].MediaType is not a string"),
        (_bad_media(0, "MediaKey", {"k": 1}), "value[0].Media[0]", "value[0].Media[0].MediaKey is not a string"),
        (_bad_media(0, "ImageWidth", "wide"), "value[0].Media[0]", "value[0].Media[0].ImageWidth is not a number"),
        (_bad_media(0, "ImageHeight", [1]), "value[0].Media[0]", "value[0].Media[0].ImageHeight is not a number"),
    ],
)
def test_malformed_media_item_is_left_out_and_named(payload: dict[str, Any], path: str, message: str) -> None:
    """One bad Media entry costs that entry, not the listing: the other photos still come back."""
    page = read_property_page(copy.deepcopy(payload), property_id="p1")
    assert [(p.path, p.kind) for p in page.problems] == [(path, "malformed")]
    assert message in page.problems[0].message
    assert 3 <= len(page.items) <= 4 and [r.order for r in page.items] == list(range(len(page.items)))
    refs, _ = parse_property_page(copy.deepcopy(payload), property_id="p1")  # the old form: logged, not raised
    assert refs == list(page.items)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"value": ["PHX1001"]}, "RESO response: value[0] is not an object"),
        (_break(["value", 0, "Media"], {"MediaURL": "x"}), "RESO response: value[0].Media is not a list"),
        ({"value": [{"Media": [{"MediaURL": 1}, 7]}]}, "value[0].Media[0].MediaURL is not a string (and 1 more"),
    ],
)
def test_page_whose_every_item_is_malformed_is_a_parse_error(payload: object, message: str) -> None:
    """Nothing usable and something malformed is a changed schema, never "0 photos"."""
    page = read_property_page(copy.deepcopy(payload), property_id="p1")
    assert page.items == () and page.malformed >= 1
    with pytest.raises(ParseError) as info:
        parse_property_page(copy.deepcopy(payload), property_id="p1")
    assert message in str(info.value)


def test_a_bad_listing_does_not_cost_the_other_listings() -> None:
    page = {"value": ["junk", {"Media": [{"MediaURL": "u/1", "MediaCategory": "Photo"}]}, {"Media": "x"}]}
    parsed = read_property_page(page, property_id="p1")
    assert [r.url for r in parsed.items] == ["u/1"]
    assert [p.path for p in parsed.problems] == ["value[0]", "value[2]"]


def test_photos_beyond_max_photos_are_one_named_problem() -> None:
    media = [{"MediaURL": f"u/{i}", "MediaCategory": "Photo", "Order": i} for i in range(1200)]
    page = read_property_page({"value": [{"Media": media}]}, property_id="p1")
    assert [r.url for r in page.items] == [f"u/{i}" for i in range(500)]
    assert [(p.kind, p.count) for p in page.problems] == [("too_many_photos", 700)]
    small = read_property_page({"value": [{"Media": media}]}, property_id="p1", max_photos=3)
    assert len(small.items) == 3 and small.problems[0].count == 1197
    assert small.items == page.items[:3]


def test_many_malformed_items_are_listed_up_to_a_bound() -> None:
    media = [{"MediaURL": 1}] * 1000 + [{"MediaURL": "u/ok", "MediaCategory": "Photo"}]
    page = read_property_page({"value": [{"Media": media}]}, property_id="p1")
    assert [r.url for r in page.items] == ["u/ok"]
    assert len(page.problems) == 20 and page.malformed == 1000
    assert page.problems[-1].message == "981 more malformed items not listed"


def test_next_link_is_resolved_and_keyed_so_a_repeat_is_seen() -> None:
    base = "https://api.mls.example/reso/odata/Property?$filter=x"
    first = read_property_page({"value": [], "@odata.nextLink": "Property?$top=1&$skip=1"}, property_id="p")
    assert first.next_link == "Property?$top=1&$skip=1"  # no base: as sent
    a = read_property_page(
        {"value": [], "@odata.nextLink": " Property?$top=1&$skip=1 "}, property_id="p", base_url=base
    )
    b = read_property_page(
        {"value": [], "@odata.nextLink": "HTTPS://API.mls.example:443/reso/odata/Property?$skip=1&$top=1#x"},
        property_id="p",
    )
    assert a.next_link == "https://api.mls.example/reso/odata/Property?$top=1&$skip=1"
    assert a.next_key == b.next_key == link_key(a.next_link)
    assert link_key("https://h/p?$skip=2") != a.next_key
    assert read_property_page({"value": [], "@odata.nextLink": "  "}, property_id="p").next_link is None


def test_truncated_media_items_are_skipped_not_guessed() -> None:
    """A Media entry cut down to its key has no URL to fetch: skipped, the rest still returned."""
    page = {
        "value": [
            {
                "ListingKey": "A",
                "Media": [{"MediaKey": "M1"}, {"MediaURL": "u/2", "Order": 2, "MediaCategory": "Photo"}],
            }
        ]
    }
    refs, _ = parse_property_page(page, property_id="p")
    assert [r.key for r in refs] == [None]
    assert [r.url for r in refs] == ["u/2"]


def test_query_by_listing_key() -> None:
    prop = Property("p1", "4732 E Camelback Rd", city="Phoenix", zip="85018", mls_listing_key="PHX1001")
    assert build_property_query(prop) == {
        "$filter": "ListingKey eq 'PHX1001'",
        "$expand": "Media",
        "$top": "10",
    }


def test_query_by_address_escapes_quotes_and_narrows_by_zip_or_city() -> None:
    prop = Property("p1", "12 O'Neil Ct", city="Phoenix", zip="85018")
    assert build_property_query(prop)["$filter"] == "UnparsedAddress eq '12 O''Neil Ct' and PostalCode eq '85018'"
    by_city = Property("p2", "4411 N 40th St", city="Coeur d'Alene")
    assert build_property_query(by_city)["$filter"] == (
        "UnparsedAddress eq '4411 N 40th St' and City eq 'Coeur d''Alene'"
    )
    bare = Property("p3", "4411 N 40th St")
    assert build_property_query(bare)["$filter"] == "UnparsedAddress eq '4411 N 40th St'"
    quoted_key = Property("p4", "x", mls_listing_key="K'1")
    assert build_property_query(quoted_key)["$filter"] == "ListingKey eq 'K''1'"


def test_token_response() -> None:
    assert parse_token_response({"access_token": "abc", "token_type": "Bearer", "expires_in": 1800}) == (
        "abc",
        1800.0,
    )
    assert parse_token_response({"access_token": "abc"}) == ("abc", 3600.0)
    assert parse_token_response({"access_token": "abc", "expires_in": "60"}) == ("abc", 60.0)
    for bad in (
        [],
        {"token_type": "Bearer"},
        {"access_token": 5},
        {"access_token": "a", "expires_in": "soon"},
        {"access_token": "a", "expires_in": 10**400},  # float() overflows: was an OverflowError
        {"access_token": "a", "expires_in": "1e999"},  # infinite: a token that never expires
        {"access_token": "a", "expires_in": [60]},
        {"access_token": "a", "expires_in": -1},
        {"access_token": "a\r\nX-Evil: 1"},  # would go into the Authorization header
        {"access_token": "tök"},
    ):
        with pytest.raises(ParseError):
            parse_token_response(bad)
