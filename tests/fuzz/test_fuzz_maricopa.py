"""Fuzzing the Maricopa parsers: only ParseError escapes, and well-formed answers give the expected parcels
and sketches."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from homeshots.core.errors import ParseError
from homeshots.core.models import Property
from homeshots.sources.maricopa import (
    load_json,
    normalize_apn,
    parse_parcel,
    parse_search,
    parse_sketches,
    pick_parcel,
    read_search,
    read_sketches,
)
from tests.fuzz.strategies import check_parsed, fuzz, json_tree, junk, mutated

SEARCH_KEYS = ["Results", "RealPropertyResults", "APN", "SitusAddress", "SitusCity", "SitusZip"]
SKETCH_KEYS = ["TotalPages", "Pages", "PageNum", "APN", "Sketch"]
DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=1)


@st.composite
def apns(draw: st.DrawFn) -> tuple[str, str]:
    """An APN as people write it (dashes, dots, spaces, lower case) and as the assessor files it."""
    book = "".join(draw(DIGITS) for _ in range(3))
    map_ = "".join(draw(DIGITS) for _ in range(2))
    parcel = "".join(draw(DIGITS) for _ in range(draw(st.sampled_from([3, 4]))))
    split = draw(st.sampled_from(["", "A", "b"]))
    sep = draw(st.sampled_from(["", "-", ".", " "]))
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return f"{pad}{book}{sep}{map_}{sep}{parcel}{split}{pad}", f"{book}{map_}{parcel}{split.upper()}"


@fuzz(100)
@given(apns())
def test_apns_as_people_write_them(apn: tuple[str, str]) -> None:
    assert normalize_apn(apn[0]) == apn[1]


@fuzz(200)
@given(junk | st.text(st.sampled_from("0123456789-. Aa\u0661\u00b2"), max_size=16))
@example("\u0661\u0667\u0663-\u0661\u0660-\u0660\u0660\u0665")  # \d took Arabic-Indic digits
def test_normalize_apn_gives_ascii_or_a_parse_error(value: Any) -> None:
    try:
        apn = normalize_apn(value)
    except ParseError as exc:
        assert len(str(exc)) < 300
        return
    assert apn.isascii() and apn.isalnum() and 8 <= len(apn) <= 10


@fuzz(100)
@given(
    st.binary(max_size=200) | json_tree.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["application/json", "text/html", ""]),
)
@example(b"[" * 100_000, "application/json")  # RecursionError from json.loads
def test_load_json_raises_only_parse_error(body: bytes, ctype: str) -> None:
    with contextlib.suppress(ParseError):
        load_json(body, ctype, where="HTTP 200 from x")


# --- search and picking the parcel -------------------------------------------------------------------------


@st.composite
def searches(draw: st.DrawFn) -> tuple[dict[str, Any], Property, str | None]:
    """Search rows for other houses and, maybe, the property's parcel; and the APN pick_parcel must give."""
    number = draw(st.integers(1, 9999))
    prop = Property("p", f"{number} E Camelback Rd", city="Phoenix", zip=draw(st.sampled_from(["85018", None])))
    rows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 5))):
        other = draw(st.integers(1, 9999).filter(lambda n: n != number))
        written, _ = draw(apns())
        rows.append(
            {"APN": written, "SitusAddress": f"{other} E CAMELBACK RD", "SitusCity": "PHOENIX", "SitusZip": 85018}
        )
    wanted = None
    if draw(st.booleans()):
        written, wanted = draw(apns())
        home = {"APN": written, "SitusAddress": f"{number} EAST CAMELBACK ROAD", "SitusCity": "PHOENIX"}
        home["SitusZip"] = draw(st.sampled_from(["85018", "85018-1234", 85018]))
        rows.insert(draw(st.integers(0, len(rows))), home)
    key = draw(st.sampled_from(["Results", "RealPropertyResults"]))
    return {"TOTAL": len(rows), key: rows, "BppResults": []}, prop, wanted


@fuzz(100)
@given(searches())
def test_well_formed_search_picks_the_parcel(generated: tuple[dict[str, Any], Property, str | None]) -> None:
    body, prop, wanted = generated
    parsed = read_search(body, property_id="p")
    check_parsed(parsed)
    assert parsed.problems == () and len(parsed.items) == body["TOTAL"]
    assert pick_parcel(list(parsed.items), prop) == wanted
    assert parse_search(body, property_id="p") == list(parsed.items)


@fuzz(200)
@given(searches().flatmap(lambda g: st.tuples(mutated(g[0], SEARCH_KEYS), st.just(g[1]))))
@example(({"Results": [{"APN": "17310005A", "SitusZip": 10**40}]}, Property("p", "1 A St")))
def test_mutated_search_raises_only_parse_error(generated: tuple[Any, Property]) -> None:
    body, prop = generated
    try:
        parsed = read_search(body, property_id="p")
    except ParseError:
        return
    check_parsed(parsed)
    apn = pick_parcel(list(parsed.items), prop)
    assert apn is None or apn in {r["APN"] for r in parsed.items}
    with contextlib.suppress(ParseError):
        parse_search(body, property_id="p")


@fuzz(100)
@given(apns(), apns(), junk)
def test_parse_parcel_checks_the_apn(mine: tuple[str, str], other: tuple[str, str], junk_value: Any) -> None:
    assert parse_parcel({"APN": mine[0], "LotSize": 1}, apn=mine[1]) == {"APN": mine[0], "LotSize": 1}
    if other[1] != mine[1]:
        with contextlib.suppress(ParseError):
            parse_parcel({"APN": other[0]}, apn=mine[1])
            raise AssertionError("another parcel's answer was taken")
    for payload in (junk_value, {"APN": junk_value}):
        with contextlib.suppress(ParseError):
            result = parse_parcel(payload, apn=mine[1])
            assert result is None or isinstance(result, dict)


# --- sketches --------------------------------------------------------------------------------------------


@st.composite
def sketch_answers(draw: st.DrawFn) -> tuple[dict[str, Any], str, list[bytes]]:
    """Sketch pages 1..n in any order (base64, maybe wrapped or as a data URI), and the images in PageNum order."""
    written, apn = draw(apns())
    images = [draw(st.binary(min_size=1, max_size=40)) for _ in range(draw(st.integers(0, 6)))]
    pages: list[dict[str, Any]] = []
    for num, data in enumerate(images, 1):
        encoded = draw(st.sampled_from([base64.b64encode(data).decode(), base64.encodebytes(data).decode()]))
        page: dict[str, Any] = {"PageNum": draw(st.sampled_from([num, str(num)])), "Sketch": encoded}
        if draw(st.booleans()):
            page["Sketch"] = "data:image/png;base64," + page["Sketch"]
        if draw(st.booleans()):
            page["APN"] = written
        pages.append(page)
    order = draw(st.permutations(range(len(pages))))
    total = len(images) + draw(st.integers(0, 3))
    return {"TotalPages": total, "Pages": [pages[i] for i in order]}, apn, images


@fuzz(100)
@given(sketch_answers(), st.integers(0, 8) | st.just(500))
def test_well_formed_sketches_come_back_in_page_order(
    generated: tuple[dict[str, Any], str, list[bytes]], cap: int
) -> None:
    body, apn, images = generated
    parsed = read_sketches(body, apn=apn, max_photos=cap)
    check_parsed(parsed, max_items=cap)
    assert [r.data for r in parsed.items] == images[:cap]
    assert [r.order for r in parsed.items] == list(range(len(parsed.items)))
    assert parsed.total_pages == body["TotalPages"]
    assert [p.kind for p in parsed.problems] == (["too_many_photos"] if len(images) > cap else [])
    assert parse_sketches(body, apn=apn) == (list(read_sketches(body, apn=apn).items), body["TotalPages"])


@fuzz(200)
@given(sketch_answers().flatmap(lambda g: st.tuples(mutated(g[0], SKETCH_KEYS), st.just(g[1]))))
@example(({"TotalPages": "\u00b2", "Pages": []}, "17310005A"))  # int('²') escaped as ValueError
@example(({"TotalPages": 2, "Pages": [{"PageNum": "\u00b2", "Sketch": "aGk="}]}, "17310005A"))
def test_mutated_sketches_raise_only_parse_error(generated: tuple[Any, str]) -> None:
    body, apn = generated
    try:
        parsed = read_sketches(body, apn=apn, max_photos=20)
    except ParseError:
        return
    check_parsed(parsed, max_items=20)
    assert all(r.data and r.key and r.key.startswith(apn) for r in parsed.items)
    with contextlib.suppress(ParseError):
        parse_sketches(body, apn=apn)
