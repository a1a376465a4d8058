"""The pure half of the Maricopa County Assessor extractor: APNs, search rows, parcel facts and sketches."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest

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

PNG_1 = b"\x89PNG\r\n\x1a\n-page-one"
PNG_2 = b"\x89PNG\r\n\x1a\n-page-two"

# Shape of /search/property/?q=4732 E Camelback Rd, Phoenix: totals plus one list per kind of record.
SEARCH = """
{"TOTAL": 3,
 "Results": [
   {"APN": "17310005A", "MCR": "123-45", "Ownership": "DOE JOHN/JANE TR", "SitusAddress": "4732 E CAMELBACK RD",
    "SitusCity": "PHOENIX", "SitusZip": "85018", "PropertyType": "Residential", "RentalID": null},
   {"APN": "173-10-006", "MCR": "123-45", "Ownership": "ROE RICHARD", "SitusAddress": "4736 E CAMELBACK RD",
    "SitusCity": "PHOENIX", "SitusZip": "85018-2210", "PropertyType": "Residential", "RentalID": null},
   {"APN": "50138237", "Ownership": "SMITH ANN", "SitusAddress": "4732 E CAMELBACK RD", "SitusCity": "MESA",
    "SitusZip": 85205, "PropertyType": "Residential"}],
 "BppResults": [], "MobileHomeResults": [], "RentalResults": []}
"""

# Shape of /parcel/{apn}: parcel facts (trimmed).
PARCEL = """
{"APN": "173-10-005A", "Owner": {"Ownership": "DOE JOHN/JANE TR"},
 "PropertyAddress": "4732 E CAMELBACK RD PHOENIX AZ 85018", "MCR": "123-45", "LotSize": 9148,
 "PropertyUseDescription": "Single Family Parcel", "IsResidential": true}
"""


def sketches_doc(total: int = 2) -> dict[str, Any]:
    """Shape of /parcel/{apn}/sketches/: page count and base64 PNG pages (deliberately out of order)."""
    return {
        "TotalPages": total,
        "Pages": [
            {"Sketch": base64.b64encode(PNG_2).decode(), "PageNum": 2, "APN": "17310005A"},
            {"Sketch": base64.b64encode(PNG_1).decode(), "PageNum": 1, "APN": "17310005A"},
        ],
    }


def camelback(**kw: Any) -> Property:
    values: dict[str, Any] = {"property_id": "p1", "address": "4732 E Camelback Rd", "city": "Phoenix", "zip": "85018"}
    return Property(**(values | kw))


# --- APNs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("17310005A", "17310005A"),
        ("173-10-005a", "17310005A"),
        (" 111-24-062 ", "11124062"),
        ("112-47-1234", "112471234"),
        ("112.47.1234", "112471234"),
        ("173 10 005A", "17310005A"),
    ],
)
def test_normalize_apn(raw: str, expected: str) -> None:
    assert normalize_apn(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        *("", "1731000", "17-310-005", "173-10-005AB", "173--10-005", "ABC-DE-FGH", "173-10-00512", "173/10/005"),
        # Arabic-Indic digits: \\d matched them and they went into the /parcel/{apn} URL
        "\u0661\u0667\u0663-\u0661\u0660-\u0660\u0660\u0665",
    ],
)
def test_normalize_apn_rejects_bad_shapes(raw: str) -> None:
    with pytest.raises(ParseError, match="not a Maricopa APN"):
        normalize_apn(raw)


def test_normalize_apn_rejects_non_strings() -> None:
    with pytest.raises(ParseError, match="not a string"):
        normalize_apn(17310005)


# --- JSON bodies -----------------------------------------------------------------------------------------


def test_load_json_names_html_even_when_typed_as_json() -> None:
    with pytest.raises(ParseError, match="expected JSON, got HTML"):
        load_json(b"<!DOCTYPE html><html>Runtime Error</html>", "text/html", where="HTTP 200 from x")
    with pytest.raises(ParseError, match=r"expected JSON, got HTML \(HTTP 200 from x\)"):
        load_json(b"  <html></html>", "application/json", where="HTTP 200 from x")


@pytest.mark.parametrize("body", [SEARCH[: len(SEARCH) // 2].encode(), b"", b"{'APN': 1}", b"\xff\xfe{"])
def test_load_json_truncated_or_malformed(body: bytes) -> None:
    with pytest.raises(ParseError, match="not valid JSON"):
        load_json(body, "application/json", where="HTTP 200 from x")


# --- search ------------------------------------------------------------------------------------------------


def test_parse_search_recorded() -> None:
    rows = parse_search(json.loads(SEARCH), property_id="p1")
    assert [r["APN"] for r in rows] == ["17310005A", "17310006", "50138237"]
    assert rows[0] == {
        "APN": "17310005A",
        "SitusAddress": "4732 E CAMELBACK RD",
        "SitusCity": "PHOENIX",
        "SitusZip": "85018",
    }
    assert rows[2]["SitusZip"] == "85205"  # a zip sent as a number


def test_parse_search_other_list_name_and_no_hits() -> None:
    doc = json.loads(SEARCH)
    assert len(parse_search({"RealPropertyResults": doc["Results"]}, property_id="p1")) == 3
    assert parse_search({"TOTAL": 0, "Results": []}, property_id="p1") == []
    assert parse_search({"TOTAL": 0, "Results": None}, property_id="p1") == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("Results"), "Results is missing"),
        (lambda d: d.update(Results={"APN": "17310005A"}), "Results is not a list"),
    ],
)
def test_parse_search_bad_envelope(mutate: Any, message: str) -> None:
    doc = json.loads(SEARCH)
    mutate(doc)
    for parse in (parse_search, read_search):
        with pytest.raises(ParseError, match=message):
            parse(doc, property_id="p1")


@pytest.mark.parametrize(
    ("mutate", "row", "message"),
    [
        (lambda d: d["Results"].__setitem__(1, "17310005A"), 1, r"Results\[1\] is not an object"),
        (lambda d: d["Results"][0].pop("APN"), 0, r"Results\[0\]\.APN is missing"),
        (lambda d: d["Results"][0].update(APN=17310005), 0, r"Results\[0\]\.APN: .* not a string"),
        (lambda d: d["Results"][2].update(APN="5013-8237"), 2, r"Results\[2\]\.APN: .* not a Maricopa APN"),
        (
            lambda d: d["Results"][2].update(APN="\u0665\u0660\u0661\u0663\u0668\u0662\u0663\u0667"),
            2,
            r"Results\[2\]\.APN: .* not a Maricopa APN",
        ),
        (lambda d: d["Results"][0].update(SitusAddress=["4732"]), 0, r"Results\[0\]\.SitusAddress is not a string"),
        (lambda d: d["Results"][1].update(SitusCity=7), 1, r"Results\[1\]\.SitusCity is not a string"),
        (lambda d: d["Results"][2].update(SitusZip=-5), 2, r"Results\[2\]\.SitusZip is not a string"),
    ],
)
def test_parse_search_bad_row_is_left_out_and_named(mutate: Any, row: int, message: str) -> None:
    """One odd record among the hits costs that record, not the lookup."""
    doc = json.loads(SEARCH)
    mutate(doc)
    parsed = read_search(doc, property_id="p1")
    assert [(p.path, p.kind) for p in parsed.problems] == [(f"Results[{row}]", "malformed")]
    assert re.search(message, parsed.problems[0].message)
    assert len(parsed.items) == 2
    assert parse_search(doc, property_id="p1") == list(parsed.items)


def test_parse_search_every_row_bad_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match=r"Results\[0\] is not an object \(and 1 more malformed items\)"):
        parse_search({"Results": [1, {"APN": "x"}]}, property_id="p1")


def test_parse_search_body_not_object() -> None:
    with pytest.raises(ParseError, match="body is not a JSON object"):
        parse_search([], property_id="p1")


# --- picking the parcel ---------------------------------------------------------------------------------------


def test_pick_parcel_street_and_zip() -> None:
    rows = parse_search(json.loads(SEARCH), property_id="p1")
    assert pick_parcel(rows, camelback()) == "17310005A"
    assert pick_parcel(rows, camelback(address="4732 east camelback road.")) == "17310005A"
    assert pick_parcel(rows, camelback(address="4736 E. Camelback Rd", zip="85018")) == "17310006"  # zip+4 row
    assert pick_parcel(rows, camelback(zip="85205", city="Mesa")) == "50138237"


def test_pick_parcel_no_match_is_none() -> None:
    rows = parse_search(json.loads(SEARCH), property_id="p1")
    assert pick_parcel(rows, camelback(address="4740 E Camelback Rd")) is None
    assert pick_parcel(rows, camelback(zip="85001")) is None
    assert pick_parcel([], camelback()) is None


def test_pick_parcel_city_without_zip_and_ambiguity() -> None:
    rows = parse_search(json.loads(SEARCH), property_id="p1")
    assert pick_parcel(rows, camelback(zip=None)) == "17310005A"
    assert pick_parcel(rows, camelback(zip=None, city="Mesa")) == "50138237"
    # neither zip nor city: two parcels in two towns fit, and guessing would store another house's sketches
    assert pick_parcel(rows, camelback(zip=None, city=None)) is None


# --- parcel facts -------------------------------------------------------------------------------------------


def test_parse_parcel_recorded() -> None:
    facts = parse_parcel(json.loads(PARCEL), apn="17310005A")
    assert facts is not None and facts["LotSize"] == 9148
    assert parse_parcel({}, apn="17310005A") is None
    assert parse_parcel(None, apn="17310005A") is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([{"APN": "17310005A"}], "body is not a JSON object"),
        ({"APN": "111-24-062"}, "answer is about parcel 11124062"),
        ({"APN": "nope"}, r"body\.APN: .* not a Maricopa APN"),
    ],
)
def test_parse_parcel_bad(payload: object, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_parcel(payload, apn="17310005A")


# --- sketches --------------------------------------------------------------------------------------------------


def test_parse_sketches_recorded() -> None:
    refs, total = parse_sketches(sketches_doc(), apn="17310005A")
    assert total == 2
    assert [(r.order, r.key, r.data) for r in refs] == [
        (0, "17310005A-sketch-1", PNG_1),
        (1, "17310005A-sketch-2", PNG_2),
    ]
    assert all(r.source == "maricopa" and r.url is None for r in refs)
    assert refs[0].source_url == "maricopa:inline:17310005A-sketch-1"


def test_parse_sketches_partial_answer_and_lenient_encodings() -> None:
    doc = sketches_doc(total=5)
    wrapped = base64.encodebytes(PNG_1).decode()  # line-wrapped, as some encoders send it
    doc["Pages"][1]["Sketch"] = "data:image/png;base64," + wrapped
    doc["Pages"][0]["PageNum"] = "2"
    refs, total = parse_sketches(doc, apn="17310005A")
    assert total == 5 and [r.data for r in refs] == [PNG_1, PNG_2]
    assert parse_sketches({"TotalPages": 0, "Pages": []}, apn="17310005A") == ([], 0)
    assert parse_sketches({"TotalPages": 0, "Pages": None}, apn="17310005A") == ([], 0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("TotalPages"), r"body\.TotalPages is missing"),
        (lambda d: d.update(TotalPages="two"), r"TotalPages is not a whole number"),
        (lambda d: d.update(TotalPages=True), r"TotalPages is not a whole number"),
        (lambda d: d.update(TotalPages="²"), r"TotalPages is not a whole number"),  # was int('²'): a ValueError
        (lambda d: d.update(TotalPages=10**30), r"TotalPages is not a whole number"),
        (lambda d: d.pop("Pages"), "Pages is missing"),
        (lambda d: d.update(Pages={"1": "x"}), "Pages is not a list"),
    ],
)
def test_parse_sketches_bad_envelope(mutate: Any, message: str) -> None:
    doc = copy.deepcopy(sketches_doc())
    mutate(doc)
    for parse in (parse_sketches, read_sketches):
        with pytest.raises(ParseError, match=message):
            parse(doc, apn="17310005A")


@pytest.mark.parametrize(
    ("mutate", "page", "message"),
    [
        (lambda d: d.update(TotalPages=1), 0, r"PageNum 2\): PageNum is beyond TotalPages 1"),
        (lambda d: d["Pages"].append("iVBORw0KGgo="), 2, r"Pages\[2\] is not an object"),
        (lambda d: d["Pages"][0].pop("PageNum"), 0, r"Pages\[0\]\.PageNum is missing"),
        (lambda d: d["Pages"][0].update(PageNum=0), 0, r"Pages\[0\]\.PageNum is 0, below 1"),
        (lambda d: d["Pages"][0].update(PageNum=1.5), 0, r"Pages\[0\]\.PageNum is not a whole number"),
        (lambda d: d["Pages"][0].update(PageNum="²"), 0, r"Pages\[0\]\.PageNum is not a whole number"),
        (lambda d: d["Pages"][1].pop("Sketch"), 1, r"Pages\[1\] \(PageNum 1\)\.Sketch is missing"),
        (lambda d: d["Pages"][1].update(Sketch=[1, 2]), 1, r"Pages\[1\] \(PageNum 1\)\.Sketch is not a string"),
        (lambda d: d["Pages"][1].update(Sketch=""), 1, r"Pages\[1\] \(PageNum 1\)\.Sketch is empty"),
        (lambda d: d["Pages"][0].update(APN="111-24-062"), 0, r"Pages\[0\] \(PageNum 2\) belongs to parcel 11124062"),
        (lambda d: d["Pages"][0].update(APN="x"), 0, r"Pages\[0\] \(PageNum 2\)\.APN: .* not a Maricopa APN"),
    ],
)
def test_parse_sketches_bad_page_is_left_out_and_named(mutate: Any, page: int, message: str) -> None:
    """One bad sketch page costs that page: the others come back."""
    doc = copy.deepcopy(sketches_doc())
    mutate(doc)
    parsed = read_sketches(doc, apn="17310005A")
    assert [(p.path, p.kind) for p in parsed.problems] == [(f"Pages[{page}]", "malformed")]
    assert re.search(message, parsed.problems[0].message)
    assert len(parsed.items) == (2 if page == 2 else 1)
    assert parse_sketches(doc, apn="17310005A") == (list(parsed.items), parsed.total_pages)


@pytest.mark.parametrize("sketch", ["not base64 at all!", "iVBORw0KGgo", "iVBOR*w0KGgo=", "€€€€"])
def test_parse_sketches_bad_base64_names_the_page(sketch: str) -> None:
    doc = sketches_doc()
    doc["Pages"][0]["Sketch"] = sketch
    where = r"sketches of 17310005A: Pages\[0\] \(PageNum 2\)\.Sketch"
    assert re.match(where + " is not valid base64", read_sketches(doc, apn="17310005A").problems[0].message)
    doc["Pages"][1]["Sketch"] = sketch
    with pytest.raises(ParseError, match=where + r" is not valid base64 \(and 1 more malformed items\)"):
        parse_sketches(doc, apn="17310005A")


def test_parse_sketches_beyond_max_photos_are_one_named_problem() -> None:
    pages = [{"PageNum": n, "Sketch": base64.b64encode(PNG_1).decode()} for n in range(1, 701)]
    parsed = read_sketches({"TotalPages": 700, "Pages": pages}, apn="17310005A")
    assert len(parsed.items) == 500 and parsed.items[-1].key == "17310005A-sketch-500"
    assert [(p.kind, p.count) for p in parsed.problems] == [("too_many_photos", 200)]
    assert parsed.total_pages == 700


def test_long_apn_is_cut_short_in_the_message() -> None:
    with pytest.raises(ParseError) as info:
        normalize_apn("1" * 100_000)
    assert len(str(info.value)) < 200


def test_load_json_nested_too_deeply() -> None:
    """The JSON decoder's RecursionError escaped load_json as such."""
    with pytest.raises(ParseError, match="nested too deeply"):
        load_json(b"[" * 100_000, "application/json", where="HTTP 200 from x")


def test_parse_sketches_body_not_object() -> None:
    with pytest.raises(ParseError, match="sketches of 17310005A: body is not a JSON object"):
        parse_sketches("iVBORw0KGgo=", apn="17310005A")
