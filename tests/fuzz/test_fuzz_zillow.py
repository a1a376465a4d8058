"""Fuzzing the Zillow page parsers: only ParseError escapes, well-formed pages give the widest copies,
and no page, however hostile, makes the tag scan slow."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from homeshots.core.errors import ParseError
from homeshots.sources.zillow import PHOTO_LISTS, has_home, is_block_page, parse_home_page, read_home_page
from tests.fuzz.strategies import check_parsed, fuzz, mutated

FP = "https://photos.zillowstatic.com/fp"
KEYS = ["props", "pageProps", "componentProps", "gdpClientCache", "property", *PHOTO_LISTS, "mixedSources",
        "jpeg", "webp", "url", "width", "id", "caption"]  # fmt: skip
TEXT = st.text(st.characters(blacklist_characters="<"), max_size=30)
"""Page text around the script: anything but a tag."""


def page(cache: Any, *, encode: bool = True, before: str = "", after: str = "") -> str:
    """A home page with ``cache`` as Zillow sends it: a JSON string inside __NEXT_DATA__, '<' escaped."""
    value = json.dumps(cache) if encode else cache
    data = json.dumps({"props": {"pageProps": {"componentProps": {"gdpClientCache": value}}}}).replace("<", r"\u003c")
    return (
        f"<html><head><title>Home | Zillow</title></head><body>{before}"
        f'<script id="__NEXT_DATA__" type="application/json">{data}</script>'
        f"{after}</body></html>"
    )


@st.composite
def photos(draw: st.DrawFn, n: int) -> tuple[dict[str, Any], str]:
    """One gallery photo and the URL it must give: the widest jpeg, else the widest webp, else its url."""
    jpeg_widths = draw(st.lists(st.integers(1, 4000), unique=True, max_size=4))
    webp_widths = draw(st.lists(st.integers(1, 4000), unique=True, max_size=3))
    photo: dict[str, Any] = {"url": f"//photos.zillowstatic.com/fp/{n}-p_d.jpg", "caption": draw(TEXT)}
    sources: dict[str, Any] = {}
    if jpeg_widths or draw(st.booleans()):
        sources["jpeg"] = [
            {"url": f"{FP}/{n}-{w}.jpg", "width": draw(st.sampled_from([w, str(w)]))} for w in jpeg_widths
        ]
    if webp_widths:
        sources["webp"] = [{"url": f"{FP}/{n}-{w}.webp", "width": w} for w in webp_widths]
    if sources or draw(st.booleans()):
        photo["mixedSources"] = sources
    if jpeg_widths:
        return photo, f"{FP}/{n}-{max(jpeg_widths)}.jpg"
    if webp_widths:
        return photo, f"{FP}/{n}-{max(webp_widths)}.webp"
    return photo, f"https://photos.zillowstatic.com/fp/{n}-p_d.jpg"


@st.composite
def homes(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A gdpClientCache with one gallery (in one of the list names) and the URLs it must give."""
    count = draw(st.integers(0, 12))
    drawn = [draw(photos(draw(st.integers(0, count)))) for _ in range(count)]  # repeats of a photo happen
    expected: list[str] = []
    for _, url in drawn:
        if url not in expected:
            expected.append(url)
    gallery = draw(st.sampled_from(PHOTO_LISTS))
    cache: dict[str, Any] = {}
    if draw(st.booleans()):
        cache['VariantQuery{"zpid":1,"altId":null}'] = {"property": {"zpid": 1, "altId": None}}
    cache['ForSaleShopperPlatformFullRenderQuery{"zpid":1}'] = {"property": {"zpid": 1, gallery: [p for p, _ in drawn]}}
    return cache, expected


@fuzz(100)
@given(homes(), st.booleans(), TEXT, TEXT, st.integers(0, 15) | st.just(500))
def test_well_formed_pages_give_the_widest_copy_of_each_photo(
    home: tuple[dict[str, Any], list[str]], encode: bool, before: str, after: str, cap: int
) -> None:
    cache, expected = home
    html = page(cache, encode=encode, before=before, after=after)
    parsed = read_home_page(html, property_id="p", max_photos=cap)
    check_parsed(parsed, max_items=cap)
    assert [r.url for r in parsed.items] == expected[:cap]
    assert [r.order for r in parsed.items] == list(range(len(parsed.items)))
    assert [p.kind for p in parsed.problems] == (["too_many_photos"] if len(expected) > cap else [])
    assert has_home(html) and not is_block_page(html)


@fuzz(200)
@given(homes().flatmap(lambda h: mutated(h[0], KEYS)), st.booleans())
@example({"Q": {"property": {"photos": [{"mixedSources": {"jpeg": [{"url": "u", "width": "²"}]}}]}}}, True)
@example({"Q": {"property": {"photos": [{"url": "http://[::1/p.jpg"}]}}}, True)
def test_mutated_caches_raise_only_parse_error(cache: Any, encode: bool) -> None:
    html = page(cache, encode=encode)
    with contextlib.suppress(ParseError):
        check_parsed(read_home_page(html, property_id="p", max_photos=20), max_items=20)
    with contextlib.suppress(ParseError):
        parse_home_page(html, property_id="p")
    with contextlib.suppress(ParseError):
        has_home(html)


TAGS = st.sampled_from([
    "<script", "<SCRIPT ", " id=", "id = '", "__NEXT_DATA__", '"', ">", "</script>", "</script >", "<title>",
    "</title>", "<div", " id=px-captcha", "'px-captcha'", "Access to this page has been denied", "&amp;", "{",
    "}", '{"props":{"pageProps":{"componentProps":{"gdpClientCache":"{}"}}}}', "[", "\n", " ", "x",
])  # fmt: skip
"""Fragments that, shuffled, make pages the tag scanner must survive: unclosed tags, stray quotes."""


@fuzz(200)
@given(st.lists(TAGS, max_size=40).map("".join) | st.text(max_size=200))
@example("<script " * 2000)  # the old regexes were quadratic here
@example('<script id="__NEXT_DATA__">' + "[" * 50_000 + "</script>")  # RecursionError from json.loads
@example('<script id="__NEXT_DATA__">{"props":{"pageProps":{"componentProps":{"gdpClientCache":"' + "[" * 50_000)
def test_raw_pages_raise_only_parse_error(html: str) -> None:
    assert isinstance(is_block_page(html), bool)
    for fn in (has_home, lambda h: parse_home_page(h, property_id="p")):
        with contextlib.suppress(ParseError):
            fn(html)


@fuzz(100)
@given(TEXT, TEXT, st.sampled_from(['<div id="px-captcha">', "<div class=x id='px-captcha'/>", "<div\tid=px-captcha>"]))
def test_walls_are_recognised_wherever_they_sit(before: str, after: str, wall: str) -> None:
    assert is_block_page(f"<html>{before}{wall}{after}</html>")
    assert is_block_page(f"<title>{before.replace('</', '')} Access to this page has been denied</title>")
