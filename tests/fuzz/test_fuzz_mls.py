"""Fuzzing the RESO parsers: only ParseError escapes, and well-formed pages give the expected photos."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urljoin

from hypothesis import example, given
from hypothesis import strategies as st

from homeshots.core.errors import ParseError
from homeshots.sources.mls import link_key, parse_property_page, parse_token_response, read_property_page
from tests.fuzz.strategies import check_parsed, fuzz, json_tree, junk, mutated

CDN = "https://cdn.mls.example"
BASE = "https://api.mls.example/reso/odata/Property?$filter=x"
KEYS = ["value", "@odata.nextLink", "Media", "MediaURL", "Order", "MediaCategory", "MediaType", "MediaKey",
        "ImageWidth", "ImageHeight", "MediaModificationTimestamp"]  # fmt: skip


@st.composite
def reso_pages(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A well-formed page and the photo URLs it must give, in order: per listing by Order (none last,
    then as sent), listings in turn, a URL seen before skipped, videos and floor plans left out."""
    listings: list[dict[str, Any]] = []
    expected: list[str] = []
    for n in range(draw(st.integers(0, 3))):
        media: list[dict[str, Any]] = []
        photos: list[tuple[int | None, int, str]] = []
        for i in range(draw(st.integers(0, 8))):
            url = draw(st.sampled_from([f"{CDN}/{n}-{i}.jpg", f"{CDN}/shared.jpg", f"  {CDN}/{n}-{i}.jpg "]))
            order = draw(st.none() | st.integers(-5, 20))
            kind = draw(st.sampled_from([("Photo", "image/jpeg"), (None, "jpeg"), ("Video", "video/mp4")]))
            item: dict[str, Any] = {"MediaURL": url, "MediaCategory": kind[0], "MediaType": kind[1]}
            if order is not None:
                item["Order"] = draw(st.sampled_from([order, str(order), float(order)]))
            if draw(st.booleans()):
                item["MediaKey"] = draw(st.text(max_size=8) | st.integers(0, 10**6))
            if draw(st.booleans()):
                item["ImageWidth"], item["ImageHeight"] = draw(st.integers(0, 9000)), str(draw(st.integers(0, 9000)))
            media.append(item)
            if kind[0] == "Photo" or kind[1] == "jpeg":
                photos.append((order, i, url.strip()))
        listing: dict[str, Any] = {"ListingKey": f"K{n}"}
        if media or draw(st.booleans()):
            listing["Media"] = media
        listings.append(listing)
        photos.sort(key=lambda t: (t[0] is None, t[0] or 0, t[1]))
        for _, _, url in photos:
            if url not in expected:
                expected.append(url)
    page: dict[str, Any] = {"@odata.context": "x", "value": listings}
    if draw(st.booleans()):
        page["@odata.nextLink"] = draw(st.sampled_from(["Property?$skip=10", f"{BASE}&$skip=10", " ", ""]))
    return page, expected


@fuzz(100)
@given(reso_pages(), st.integers(0, 12) | st.just(500))
def test_well_formed_pages_give_the_expected_photos(generated: tuple[dict[str, Any], list[str]], cap: int) -> None:
    page, expected = generated
    parsed = read_property_page(page, property_id="p", max_photos=cap, base_url=BASE)
    check_parsed(parsed, max_items=cap)
    assert [r.url for r in parsed.items] == expected[:cap]
    assert [r.order for r in parsed.items] == list(range(len(parsed.items)))
    assert [(p.kind, p.count) for p in parsed.problems] == (
        [("too_many_photos", len(expected) - cap)] if len(expected) > cap else []
    )
    link = (page.get("@odata.nextLink") or "").strip()
    assert parsed.next_link == (urljoin(BASE, link) if link else None)
    assert parsed.next_key == (link_key(urljoin(BASE, link)) if link else None)
    assert parse_property_page(json.loads(json.dumps(page)), property_id="p")[0] == list(
        read_property_page(page, property_id="p").items
    )


@fuzz(200)
@given(reso_pages().flatmap(lambda g: mutated(g[0], KEYS)), st.integers(0, 12))
@example({"value": [{"Media": [{"MediaURL": "u", "Order": "9" * 5000}]}]}, 5)  # int(): digit limit ValueError
@example({"value": [{"Media": [{"MediaURL": "http://[::1/x", "MediaCategory": "Photo"}]}]}, 5)
@example({"value": [], "@odata.nextLink": "https://h:port/x"}, 5)  # urljoin/urlsplit ValueError
def test_mutated_pages_raise_only_parse_error(page: Any, cap: int) -> None:
    try:
        parsed = read_property_page(page, property_id="p", max_photos=cap, base_url=BASE)
    except ParseError:
        pass
    else:
        check_parsed(parsed, max_items=cap)
    try:
        refs, _ = parse_property_page(page, property_id="p")
    except ParseError:
        return
    assert all(r.source == "mls" and r.url for r in refs)


@fuzz(100)
@given(junk | json_tree)
def test_any_json_value_is_a_page_or_a_parse_error(payload: Any) -> None:
    with contextlib.suppress(ParseError):
        check_parsed(read_property_page(payload, property_id="p"))


TOKEN_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@fuzz(100)
@given(st.text(TOKEN_CHARS, min_size=1, max_size=200), st.none() | st.integers(1, 10**7) | st.floats(0.5, 1e7))
def test_well_formed_token_responses(token: str, expires: int | float | None) -> None:
    body: dict[str, Any] = {"access_token": f" {token} ", "token_type": "Bearer"}
    if expires is not None:
        body["expires_in"] = expires if isinstance(expires, float) else str(expires)
    assert parse_token_response(body) == (token, 3600.0 if expires is None else float(expires))


@fuzz(200)
@given(mutated({"access_token": "abc", "expires_in": 60, "token_type": "Bearer"}, ["access_token", "expires_in"]))
@example({"access_token": "a", "expires_in": 10**400})  # float() OverflowError escaped
@example({"access_token": "a", "expires_in": "1e999"})  # an infinite lifetime was accepted
def test_mutated_token_responses_raise_only_parse_error(body: Any) -> None:
    try:
        token, seconds = parse_token_response(body)
    except ParseError:
        return
    assert token and token.isascii() and token.isprintable() and " " not in token
    assert 0 < seconds < float("inf")
