"""The pure half of the Redfin extractor: prefix stripping, property ids, autocomplete and aboveTheFold."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from homeshots.core.errors import ParseError
from homeshots.core.models import Property
from homeshots.sources.redfin import (
    is_challenge_page,
    parse_above_the_fold,
    parse_autocomplete,
    property_id_from_url,
    read_above_the_fold,
    strip_prefix,
)

CDN = "https://ssl.cdn-redfin.com/photo/48/bigphoto"
PROP = Property("p1", "4732 E Camelback Rd", city="Phoenix", state="AZ", zip="85018")

# Shape of a stingray location-autocomplete answer (v=2): a near miss (same house number) listed
# first, the wanted home second, and Redfin's own exactMatch.
AUTOCOMPLETE = """{}&&{"version":586,"errorMessage":"Success","resultCode":0,"payload":{
 "sections":[{"rows":[
   {"id":"1_27000077","type":"1","name":"4732 E Calle Del Norte","subName":"Phoenix, AZ, USA",
    "url":"/AZ/Phoenix/4732-E-Calle-Del-Norte-85018/home/27000077","active":true,"claimedHome":false,
    "invalidMRS":false,"businessMarketIds":[22],"countryCode":"US"},
   {"id":"1_27000001","type":"1","name":"4732 E Camelback Rd","subName":"Phoenix, AZ, USA",
    "url":"/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001","active":true,"claimedHome":false,
    "invalidMRS":false,"businessMarketIds":[22],"countryCode":"US"}],"name":"Addresses"}],
 "exactMatch":{"id":"1_27000001","type":"1","name":"4732 E Camelback Rd","subName":"Phoenix, AZ, USA",
    "url":"/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001","active":true,"countryCode":"US"},
 "searchTerm":"4732 E Camelback Rd, Phoenix, AZ 85018"}}"""

# Shape of aboveTheFold (accessLevel=1): mediaBrowserInfo.photos[] with photoUrls per variant.
ABOVE_THE_FOLD = """{}&&{"version":586,"errorMessage":"Success","resultCode":0,"payload":{
 "addressSectionInfo":{"streetAddress":{"assembledAddress":"4732 E Camelback Rd"},"city":"Phoenix","state":"AZ"},
 "mediaBrowserInfo":{"photos":[
   {"photoId":1111,"photoType":1,"width":2048,"height":1365,"fileName":"6612345_0.jpg",
    "photoUrls":{"fullScreenPhotoUrl":"%(cdn)s/345/6612345_0.jpg",
                 "nonFullScreenPhotoUrl":"https://ssl.cdn-redfin.com/photo/48/mbpaddedwide/345/6612345_0.jpg",
                 "lightboxListUrl":"https://ssl.cdn-redfin.com/photo/48/mbphoto/345/6612345_0.jpg"},
    "thumbnailData":{"thumbnailUrl":"https://ssl.cdn-redfin.com/photo/48/islphoto/345/6612345_0.jpg"}},
   {"photoId":"2222","photoUrls":{"nonFullScreenPhotoUrl":"https://ssl.cdn-redfin.com/photo/48/mb/345/6612345_1_0.jpg"}},
   {"photoId":3333,"photoUrls":{"fullScreenPhotoUrl":null,"nonFullScreenPhotoUrl":null}},
   {"photoUrls":{"fullScreenPhotoUrl":"%(cdn)s/345/6612345_2_0.jpg"}},
   {"photoId":1111,"photoUrls":{"fullScreenPhotoUrl":"%(cdn)s/345/6612345_0.jpg"}}],
  "scans":[],"isHot":false,"streetView":{"streetViewAvailable":true}},
 "propertyId":27000001}}""" % {"cdn": CDN}  # noqa: UP031


def doc(body: str) -> dict[str, Any]:
    out = strip_prefix(body)
    assert isinstance(out, dict)
    return out


def raises(fn: Any, *args: Any, match: str, **kw: Any) -> None:
    with pytest.raises(ParseError, match=match):
        fn(*args, **kw)


# --- strip_prefix / property_id_from_url / is_challenge_page ----------------------------------------------


def test_strip_prefix_bytes_str_and_plain_json() -> None:
    assert strip_prefix(b'{}&&{"resultCode":0}') == {"resultCode": 0}
    assert strip_prefix('\ufeff  {}&&{"a": [1]}') == {"a": [1]}
    assert strip_prefix('{"resultCode":0,"payload":{}}') == {"resultCode": 0, "payload": {}}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"{}&&", "empty"),
        (b"<!DOCTYPE html><html>hi</html>", "HTML"),
        (b'{}&&{"payload":{"sections":[', "truncated"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("{}&&nope", "not JSON"),
    ],
)
def test_strip_prefix_refuses_what_is_not_json(body: bytes | str, problem: str) -> None:
    raises(strip_prefix, body, match=problem)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.redfin.com/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001", "27000001"),
        ("https://www.redfin.com/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001/", "27000001"),
        ("https://www.redfin.com/AZ/Phoenix/1-Main-St-85018/unit-5/home/123?utm_source=x#photos", "123"),
        ("http://evil.example/home/42", "42"),
        ("https://www.redfin.com/AZ/Phoenix/home/abc", None),
        ("https://www.redfin.com/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001x", None),
        ("https://www.redfin.com/city/14240/AZ/Phoenix", None),
        ("", None),
        (None, None),
    ],
)
def test_property_id_from_url(url: str | None, expected: str | None) -> None:
    assert property_id_from_url(url) == expected


@pytest.mark.parametrize(
    "page",
    [
        "<html><head><title>Access Denied</title></head><body>Reference #18.2f</body></html>",
        "<!DOCTYPE html><title>Just a moment...</title><script src='/cdn-cgi/challenge-platform/h/b'></script>",
        "<html><body><div id='px-captcha'></div>Press &amp; Hold</body></html>",
        "<html><script>window.gokuProps = {}; AwsWafIntegration.getToken()</script></html>",
    ],
)
def test_challenge_pages_are_recognised(page: str) -> None:
    assert is_challenge_page(page)


@pytest.mark.parametrize(
    "text",
    [
        '{}&&{"payload":{"remarks":"no captcha needed, access denied to pets"}}',
        "<html><title>Page not found</title><body>We lost that one.</body></html>",
        "",
    ],
)
def test_json_and_plain_pages_are_not_challenges(text: str) -> None:
    assert not is_challenge_page(text)


# --- parse_autocomplete ------------------------------------------------------------------------------------


def test_exact_match_wins() -> None:
    assert parse_autocomplete(doc(AUTOCOMPLETE), prop=PROP) == "27000001"


def test_sections_without_exact_match_skip_the_near_miss() -> None:
    body = doc(AUTOCOMPLETE)
    del body["payload"]["exactMatch"]
    assert parse_autocomplete(body, prop=PROP) == "27000001"
    spelled_out = Property("p1", "4732 East Camelback Road", city="Phoenix", zip="85018")
    assert parse_autocomplete(body, prop=spelled_out) == "27000001"


def test_only_a_near_miss_is_not_found() -> None:
    body = doc(AUTOCOMPLETE)
    del body["payload"]["exactMatch"]
    del body["payload"]["sections"][0]["rows"][1]
    assert parse_autocomplete(body, prop=PROP) is None


def test_region_exact_match_falls_back_to_address_rows() -> None:
    body = doc(AUTOCOMPLETE)
    body["payload"]["exactMatch"] = {"id": "2_85018", "type": "2", "name": "85018", "url": "/zipcode/85018"}
    assert parse_autocomplete(body, prop=PROP) == "27000001"


def test_other_zip_or_city_is_another_house() -> None:
    body = doc(AUTOCOMPLETE)
    assert parse_autocomplete(body, prop=Property("p1", "4732 E Camelback Rd", zip="85251")) is None
    del body["payload"]["exactMatch"]
    for row in body["payload"]["sections"][0]["rows"]:
        row["url"] = "/home/" + row["id"][2:]  # no zip in the URL: the city decides
    assert parse_autocomplete(body, prop=Property("p1", "4732 E Camelback Rd", city="phoenix")) == "27000001"
    assert parse_autocomplete(body, prop=Property("p1", "4732 E Camelback Rd", city="Scottsdale")) is None


def test_unit_spelling_does_not_matter() -> None:
    body = {
        "resultCode": 0,
        "payload": {
            "sections": [
                {
                    "rows": [
                        {
                            "id": "1_9",
                            "type": 1,
                            "name": "100 N Central Ave Unit 5",
                            "url": "/AZ/Phoenix/x-85004/home/9",
                        }
                    ]
                }
            ]
        },
    }
    assert parse_autocomplete(body, prop=Property("p", "100 N Central Ave #5", zip="85004")) == "9"


@pytest.mark.parametrize(
    "payload", [{"sections": []}, {}, {"sections": [{"rows": None, "name": "Places"}]}, {"sections": None}]
)
def test_no_rows_is_not_found(payload: dict[str, Any]) -> None:
    assert (
        parse_autocomplete({"version": 1, "errorMessage": "Success", "resultCode": 0, "payload": payload}, prop=PROP)
        is None
    )


def test_not_found_result_code_is_none_other_codes_are_named() -> None:
    assert parse_autocomplete({"errorMessage": "Location not found", "resultCode": 1}, prop=PROP) is None
    raises(
        parse_autocomplete,
        {"errorMessage": "Invalid argument", "resultCode": 101},
        prop=PROP,
        match=r"autocomplete: resultCode is 101 \('Invalid argument'\)",
    )
    raises(parse_autocomplete, {"resultCode": 2}, prop=PROP, match="no errorMessage")


def _broken(recorded: str, path: list[Any], value: Any) -> dict[str, Any]:
    """The recorded body with the field at ``path`` replaced by ``value`` (or deleted for KeyError)."""
    body = copy.deepcopy(doc(recorded))
    target = body
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


EXACT_ROW = ["payload", "exactMatch"]
ROW1 = ["payload", "sections", 0, "rows", 1]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["payload"], KeyError, "payload is missing"),
        (["payload"], [], "payload is not an object"),
        (["resultCode"], "0", "resultCode is not a number"),
        (["resultCode"], True, "resultCode is not a number"),
        ([*EXACT_ROW], "1_27000001", "payload.exactMatch is not an object"),
        ([*EXACT_ROW, "id"], KeyError, "payload.exactMatch.id is missing"),
        ([*EXACT_ROW, "id"], "27000001", r"payload.exactMatch.id is not '<type>_<propertyId>'"),
        ([*EXACT_ROW, "url"], 5, "payload.exactMatch.url is not a string"),
        (["payload", "sections"], {"rows": []}, "payload.sections is not a list"),
        (["payload", "sections", 0], "Addresses", r"payload.sections\[0\] is not an object"),
        (["payload", "sections", 0, "rows"], {"id": "1_1"}, r"payload.sections\[0\].rows is not a list"),
        ([*ROW1], None, r"payload.sections\[0\].rows\[1\] is not an object"),
        ([*ROW1, "name"], ["4732 E Camelback Rd"], r"payload.sections\[0\].rows\[1\].name is not a string"),
        ([*ROW1, "id"], "1_abc", r"payload.sections\[0\].rows\[1\].id is not '<type>_<propertyId>'"),
    ],
)
def test_autocomplete_wrong_shapes_name_the_field(path: list[Any], value: Any, message: str) -> None:
    body = _broken(AUTOCOMPLETE, path, value)
    if path[:2] == ["payload", "sections"]:  # rows are read only when there is no exactMatch
        del body["payload"]["exactMatch"]
    raises(parse_autocomplete, body, prop=PROP, match=message)


def test_autocomplete_body_not_an_object() -> None:
    raises(parse_autocomplete, [1, 2], prop=PROP, match="autocomplete: body is not a JSON object")


# --- parse_above_the_fold ----------------------------------------------------------------------------------


def test_photos_in_order_full_screen_first_with_photo_ids() -> None:
    refs = parse_above_the_fold(doc(ABOVE_THE_FOLD), property_id="27000001")
    assert [r.url for r in refs] == [
        f"{CDN}/345/6612345_0.jpg",
        "https://ssl.cdn-redfin.com/photo/48/mb/345/6612345_1_0.jpg",  # no full-screen URL: the smaller one
        f"{CDN}/345/6612345_2_0.jpg",
    ]  # the URL-less photo and the repeated first photo are skipped
    assert [r.order for r in refs] == [0, 1, 2]
    assert [r.key for r in refs] == ["1111", "2222", None]
    assert {(r.source, r.declared_width, r.declared_height) for r in refs} == {("redfin", None, None)}


def test_home_not_found_and_no_photos_are_empty() -> None:
    assert (
        parse_above_the_fold({"version": 586, "errorMessage": "Home not found", "resultCode": 1}, property_id="1") == []
    )
    body = doc(ABOVE_THE_FOLD)
    body["payload"]["mediaBrowserInfo"]["photos"] = []
    assert parse_above_the_fold(body, property_id="1") == []
    del body["payload"]["mediaBrowserInfo"]["photos"]
    assert parse_above_the_fold(body, property_id="1") == []


MEDIA = ["payload", "mediaBrowserInfo"]
PHOTO0 = [*MEDIA, "photos", 0]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["payload"], KeyError, "aboveTheFold: payload is missing"),
        (["payload"], "x", "aboveTheFold: payload is not an object"),
        (["resultCode"], 500, r"aboveTheFold: resultCode is 500 \('Success'\)"),
        ([*MEDIA], KeyError, "payload.mediaBrowserInfo is missing"),
        ([*MEDIA], [], "payload.mediaBrowserInfo is not an object"),
        ([*MEDIA, "photos"], {"0": {}}, "payload.mediaBrowserInfo.photos is not a list"),
    ],
)
def test_above_the_fold_wrong_envelope_names_the_field(path: list[Any], value: Any, message: str) -> None:
    for parse in (parse_above_the_fold, read_above_the_fold):
        raises(parse, _broken(ABOVE_THE_FOLD, path, value), property_id="27000001", match=message)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ([*PHOTO0], "https://x/1.jpg", r"photos\[0\] is not an object"),
        ([*PHOTO0, "photoUrls"], KeyError, r"photos\[0\].photoUrls is missing"),
        ([*PHOTO0, "photoUrls"], "https://x/1.jpg", r"photos\[0\].photoUrls is not an object"),
        ([*PHOTO0, "photoUrls", "fullScreenPhotoUrl"], 7, r"photos\[0\].photoUrls.fullScreenPhotoUrl is not a string"),
        ([*PHOTO0, "photoUrls", "nonFullScreenPhotoUrl"], {}, r"nonFullScreenPhotoUrl is not a string"),
        ([*PHOTO0, "photoUrls", "fullScreenPhotoUrl"], "https://[x/1.jpg", r"fullScreenPhotoUrl is not a URL"),
        ([*PHOTO0, "photoId"], {"id": 1}, r"photos\[0\].photoId is not a string or number"),
        ([*PHOTO0, "photoId"], False, r"photos\[0\].photoId is not a string or number"),
    ],
)
def test_above_the_fold_malformed_photo_is_left_out_and_named(path: list[Any], value: Any, message: str) -> None:
    """One bad photo costs that photo: the others come back, the bad one is a named problem."""
    parsed = read_above_the_fold(_broken(ABOVE_THE_FOLD, path, value), property_id="27000001")
    assert [(p.path, p.kind) for p in parsed.problems] == [("payload.mediaBrowserInfo.photos[0]", "malformed")]
    assert re.search(message, parsed.problems[0].message)
    assert [r.url for r in parsed.items] == [
        "https://ssl.cdn-redfin.com/photo/48/mb/345/6612345_1_0.jpg",
        f"{CDN}/345/6612345_2_0.jpg",
        f"{CDN}/345/6612345_0.jpg",  # the repeat of photo 0, now the first time that URL is seen
    ]
    refs = parse_above_the_fold(_broken(ABOVE_THE_FOLD, path, value), property_id="27000001")
    assert refs == list(parsed.items)


def test_above_the_fold_all_photos_malformed_is_a_parse_error() -> None:
    body = _broken(ABOVE_THE_FOLD, [*MEDIA, "photos"], [{"photoUrls": 1}, "x"])
    raises(parse_above_the_fold, body, property_id="1", match=r"photos\[0\].photoUrls is not an object \(and 1 more")


def test_above_the_fold_photos_beyond_max_photos_are_one_named_problem() -> None:
    photos = [{"photoId": i, "photoUrls": {"fullScreenPhotoUrl": f"{CDN}/{i}.jpg"}} for i in range(2000)]
    body = _broken(ABOVE_THE_FOLD, [*MEDIA, "photos"], photos)
    parsed = read_above_the_fold(body, property_id="1")
    assert len(parsed.items) == 500 and parsed.items[-1].key == "499"
    assert [(p.kind, p.count) for p in parsed.problems] == [("too_many_photos", 1500)]
    assert len(read_above_the_fold(body, property_id="1", max_photos=10).items) == 10


def test_autocomplete_junk_rows_beside_the_home_are_passed_over() -> None:
    body = doc(AUTOCOMPLETE)
    del body["payload"]["exactMatch"]
    body["payload"]["sections"].insert(0, "junk")
    body["payload"]["sections"][1]["rows"].insert(0, {"type": "1", "name": 5})
    assert parse_autocomplete(body, prop=PROP) == "27000001"


@pytest.mark.parametrize(
    "row_id", ["1_²", "1_\u0661\u0662\u0663", "1_" + "9" * 40]
)  # '²'.isdigit() is true: was taken as an id
def test_autocomplete_property_ids_are_ascii_digits(row_id: str) -> None:
    body = {"resultCode": 0, "payload": {"exactMatch": {"id": row_id, "type": "1", "url": "/x/home/1"}}}
    raises(parse_autocomplete, body, prop=PROP, match="is not '<type>_<propertyId>'")


@pytest.mark.parametrize("tail", ["\u0661\u0662\u0663", "²", "9" * 40])
def test_url_property_ids_are_ascii_digits(tail: str) -> None:
    assert property_id_from_url("https://www.redfin.com/AZ/x/home/" + tail) is None


def test_error_message_is_cut_short_in_the_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        parse_autocomplete({"resultCode": 7, "errorMessage": "x" * 100_000}, prop=PROP)
    assert len(str(info.value)) < 300 and "(100000 characters)" in str(info.value)


def test_deeply_nested_body_is_a_parse_error() -> None:
    """The JSON decoder's RecursionError escaped strip_prefix as such."""
    raises(strip_prefix, b"{}&&" + b"[" * 100_000, match="nested too deeply")


def test_above_the_fold_body_not_an_object() -> None:
    raises(parse_above_the_fold, "Success", property_id="1", match="aboveTheFold: body is not a JSON object")
