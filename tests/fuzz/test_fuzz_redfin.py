"""Fuzzing the Redfin parsers: only ParseError escapes, and well-formed answers give the expected ids and photos."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from homeshots.core.errors import ParseError
from homeshots.core.models import Property
from homeshots.sources.redfin import (
    PREFIX,
    is_challenge_page,
    parse_above_the_fold,
    parse_autocomplete,
    property_id_from_url,
    read_above_the_fold,
    strip_prefix,
)
from tests.fuzz.strategies import check_parsed, fuzz, json_tree, junk, mutated

CDN = "https://ssl.cdn-redfin.com/photo/48"
PHOTO_KEYS = ["resultCode", "errorMessage", "payload", "mediaBrowserInfo", "photos", "photoUrls",
              "fullScreenPhotoUrl", "nonFullScreenPhotoUrl", "photoId"]  # fmt: skip
ROW_KEYS = ["resultCode", "payload", "exactMatch", "sections", "rows", "id", "type", "name", "url", "subName"]
STREETS = ["E Camelback Rd", "N Central Ave", "W Osborn Rd"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


# --- strip_prefix, property_id_from_url, is_challenge_page ------------------------------------------------


@fuzz(100)
@given(JSON, st.sampled_from(["", PREFIX, "\ufeff" + PREFIX, "  \n" + PREFIX]), st.booleans())
def test_strip_prefix_gives_back_the_json(value: Any, prefix: str, as_bytes: bool) -> None:
    text = prefix + json.dumps(value)
    assert strip_prefix(text.encode() if as_bytes else text) == value


@fuzz(200)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | st.just(PREFIX.encode() + b"[" * 50_000))
def test_strip_prefix_raises_only_parse_error(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        strip_prefix(body)


@fuzz(100)
@given(
    st.text(st.characters(blacklist_characters="/?#"), max_size=60),
    st.integers(0, 10**15),
    st.sampled_from(["", "/", "?x=/home/9", "#photos", "/?a"]),
)
def test_property_id_from_a_home_url(slug: str, pid: int, tail: str) -> None:
    assert property_id_from_url(f"https://www.redfin.com/AZ/Phoenix/{slug}/home/{pid}{tail}") == str(pid)


@fuzz(200)
@given(st.none() | st.text(max_size=80) | st.text(st.sampled_from("/home0123456789\u0661\u00b2?#x"), max_size=40))
@example("https://www.redfin.com/x/home/\u0661\u0662\u0663")  # \d took Arabic-Indic digits as an id
def test_property_id_is_ascii_digits_or_none(url: str | None) -> None:
    pid = property_id_from_url(url)
    assert pid is None or (pid.isascii() and pid.isdigit() and f"/home/{pid}" in (url or ""))


@fuzz(100)
@given(st.text(max_size=300) | JSON.map(json.dumps))
def test_is_challenge_page_is_a_bool_and_json_is_never_one(text: str) -> None:
    assert isinstance(is_challenge_page(text), bool)
    assert not is_challenge_page(json.dumps({"remarks": text}))


# --- aboveTheFold ----------------------------------------------------------------------------------------------


@st.composite
def above_the_fold(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A well-formed body and its photo URLs: full-screen, else the smaller one; repeats and URL-less skipped."""
    photos: list[dict[str, Any]] = []
    expected: list[str] = []
    for _ in range(draw(st.integers(0, 12))):
        n = draw(st.integers(0, 12))  # a repeated n repeats a URL
        full = draw(st.sampled_from([f"{CDN}/bigphoto/{n}.jpg", None, "", "  "]))
        small = draw(st.sampled_from([f"{CDN}/mb/{n}.jpg", None]))
        urls = {"fullScreenPhotoUrl": full, "nonFullScreenPhotoUrl": small}
        photo: dict[str, Any] = {"photoUrls": {k: v for k, v in urls.items() if v is not None or draw(st.booleans())}}
        if draw(st.booleans()):
            photo["photoId"] = draw(st.integers(0, 10**9) | st.text(max_size=6))
        photos.append(photo)
        chosen = (full or "").strip() or small
        if chosen and chosen not in expected:
            expected.append(chosen)
    body = {
        "version": 586,
        "errorMessage": "Success",
        "resultCode": 0,
        "payload": {"mediaBrowserInfo": {"photos": photos}},
    }
    return body, expected


@fuzz(100)
@given(above_the_fold(), st.integers(0, 15) | st.just(500))
def test_well_formed_above_the_fold_gives_the_expected_photos(
    generated: tuple[dict[str, Any], list[str]], cap: int
) -> None:
    body, expected = generated
    parsed = read_above_the_fold(body, property_id="1", max_photos=cap)
    check_parsed(parsed, max_items=cap)
    assert [r.url for r in parsed.items] == expected[:cap]
    assert [p.kind for p in parsed.problems] == (["too_many_photos"] if len(expected) > cap else [])
    assert parse_above_the_fold(strip_prefix(PREFIX + json.dumps(body)), property_id="1") == list(
        read_above_the_fold(body, property_id="1").items
    )


@fuzz(200)
@given(above_the_fold().flatmap(lambda g: mutated(g[0], PHOTO_KEYS)) | junk | json_tree)
@example({"resultCode": 7, "errorMessage": "x" * 100_000})
@example(
    {"resultCode": 0, "payload": {"mediaBrowserInfo": {"photos": [{"photoUrls": {"fullScreenPhotoUrl": "http://[x"}}]}}}
)
def test_mutated_above_the_fold_raises_only_parse_error(body: Any) -> None:
    try:
        check_parsed(read_above_the_fold(body, property_id="1", max_photos=20), max_items=20)
    except ParseError as exc:
        assert len(str(exc)) < 2000
    with contextlib.suppress(ParseError):
        parse_above_the_fold(body, property_id="1")


# --- autocomplete ----------------------------------------------------------------------------------------------


def row(number: int, street: str, zip5: str, pid: int) -> dict[str, Any]:
    return {
        "id": f"1_{pid}",
        "type": "1",
        "name": f"{number} {street}",
        "subName": "Phoenix, AZ, USA",
        "url": f"/AZ/Phoenix/{number}-{street.replace(' ', '-')}-{zip5}/home/{pid}",
    }


@st.composite
def autocomplete(draw: st.DrawFn) -> tuple[dict[str, Any], Property, str | None]:
    """Rows for nearby houses and, maybe, the wanted home (maybe as exactMatch); and the id it must give."""
    number, street, zip5 = (
        draw(st.integers(1, 9999)),
        draw(st.sampled_from(STREETS)),
        draw(st.sampled_from(["85018", "85004"])),
    )
    prop = Property("p", f"{number} {street}", city="Phoenix", zip=zip5)
    rows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 5))):
        other = draw(st.integers(1, 9999).filter(lambda n: n != number))
        rows.append(row(other, draw(st.sampled_from(STREETS)), zip5, draw(st.integers(1, 10**8))))
    rows.append({"id": "2_85018", "type": "2", "name": "85018", "url": "/zipcode/85018"})  # a region row
    wanted: str | None = None
    payload: dict[str, Any] = {}
    if draw(st.booleans()):
        pid = draw(st.integers(1, 10**8))
        home = row(number, street, zip5, pid)
        wanted = str(pid)
        rows.insert(draw(st.integers(0, len(rows))), home)
        if draw(st.booleans()):
            payload["exactMatch"] = dict(home, name=draw(st.sampled_from([home["name"], "typed differently"])))
    cut = draw(st.integers(0, len(rows)))
    payload["sections"] = [{"rows": rows[:cut], "name": "Addresses"}, {"rows": rows[cut:], "name": "Places"}]
    return {"version": 586, "errorMessage": "Success", "resultCode": 0, "payload": payload}, prop, wanted


@fuzz(100)
@given(autocomplete())
def test_well_formed_autocomplete_finds_the_home_and_only_it(
    generated: tuple[dict[str, Any], Property, str | None],
) -> None:
    body, prop, wanted = generated
    assert parse_autocomplete(body, prop=prop) == wanted


@fuzz(200)
@given(autocomplete().flatmap(lambda g: st.tuples(mutated(g[0], ROW_KEYS), st.just(g[1]))))
@example(({"resultCode": 0, "payload": {"exactMatch": {"id": "1_\u00b2", "type": "1"}}}, Property("p", "1 A St")))
def test_mutated_autocomplete_raises_only_parse_error(generated: tuple[Any, Property]) -> None:
    body, prop = generated
    try:
        pid = parse_autocomplete(body, prop=prop)
    except ParseError:
        return
    assert pid is None or (pid.isascii() and pid.isdigit())
