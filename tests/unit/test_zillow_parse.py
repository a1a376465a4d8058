"""The pure half of the Zillow extractor: URLs, the PerimeterX wall, and ``__NEXT_DATA__`` parsing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from homeshots.core.errors import ParseError
from homeshots.core.models import Property
from homeshots.sources.zillow import has_home, home_url, is_block_page, parse_home_page, read_home_page

FP = "https://photos.zillowstatic.com/fp"

# Shape of a real home-details page, trimmed: Next.js shell, escaped __NEXT_DATA__, a double-encoded
# gdpClientCache keyed by GraphQL query, photos at several widths (the widest not always last).
RECORDED = r"""<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/>
<title>4732 E Camelback Rd, Phoenix, AZ 85018 | MLS #6612345 | Zillow</title>
<link rel="canonical" href="https://www.zillow.com/homedetails/4732-E-Camelback-Rd-Phoenix-AZ-85018/7000001_zpid/"/>
<script src="https://www.zillowstatic.com/s3/hdp/_next/static/chunks/main-3f2a.js" defer=""></script>
</head><body><div id="__next"><div class="layout-wrapper"><h1>4732 E Camelback Rd</h1></div></div>
<script id="__NEXT_DATA__" type="application/json">{"props":{"pageProps":{"componentProps":{"gdpClientCache":"{\"ForSaleShopperPlatformFullRenderQuery{\\\"zpid\\\":7000001,\\\"contactFormRenderParameter\\\":{\\\"zpid\\\":7000001,\\\"platform\\\":\\\"desktop\\\",\\\"isDoubleScroll\\\":true}}\":{\"property\":{\"zpid\":7000001,\"address\":{\"streetAddress\":\"4732 E Camelback Rd\",\"city\":\"Phoenix\",\"state\":\"AZ\",\"zipcode\":\"85018\"},\"description\":\"Views \\u003cfor days\\u003e \\u0026 a pool\",\"photoCount\":3,\"responsivePhotos\":[{\"caption\":\"\",\"subjectType\":null,\"url\":\"https://photos.zillowstatic.com/fp/aaa-p_d.jpg\",\"mixedSources\":{\"jpeg\":[{\"url\":\"https://photos.zillowstatic.com/fp/aaa-cc_ft_192.jpg\",\"width\":192},{\"url\":\"https://photos.zillowstatic.com/fp/aaa-cc_ft_768.jpg\",\"width\":768},{\"url\":\"https://photos.zillowstatic.com/fp/aaa-cc_ft_1536.jpg\",\"width\":1536}],\"webp\":[{\"url\":\"https://photos.zillowstatic.com/fp/aaa-cc_ft_1536.webp\",\"width\":1536}]}},{\"caption\":\"Kitchen\",\"subjectType\":null,\"mixedSources\":{\"jpeg\":[{\"url\":\"https://photos.zillowstatic.com/fp/bbb-cc_ft_1536.jpg\",\"width\":1536},{\"url\":\"https://photos.zillowstatic.com/fp/bbb-cc_ft_384.jpg\",\"width\":384}]}},{\"caption\":\"\",\"mixedSources\":{\"jpeg\":[{\"url\":\"https://photos.zillowstatic.com/fp/ccc-cc_ft_960.jpg\",\"width\":960},{\"url\":\"https://photos.zillowstatic.com/fp/ccc-cc_ft_1344.jpg\",\"width\":1344}]}}]}},\"VariantQuery{\\\"zpid\\\":7000001,\\\"altId\\\":null}\":{\"property\":{\"zpid\":7000001,\"altId\":null}}}","zpid":7000001,"renderedPage":"fullPage"}},"__N_SSP":true},"page":"/homedetails/[...slug]","query":{"slug":["4732-E-Camelback-Rd-Phoenix-AZ-85018","7000001_zpid"]},"buildId":"hdp-6.1.2024","isFallback":false,"gssp":true,"customServer":true}</script>
</body></html>
"""  # noqa: E501 - a real page puts __NEXT_DATA__ on one line

PX_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Access to this page has been denied</title>
<script>window._pxAppId = 'PXHYx10rg3';</script></head>
<body><div class="px-captcha-error-container"><p>Press &amp; Hold to confirm you are a human (and not a bot).</p>
<div id="px-captcha"></div></div></body></html>"""


def page(cache: object, *, raw_next_data: str | None = None) -> str:
    """A home page around ``cache`` (encoded as Zillow does: a JSON string inside the JSON)."""
    if raw_next_data is None:
        encoded = cache if isinstance(cache, str) else json.dumps(cache)
        raw_next_data = json.dumps({"props": {"pageProps": {"componentProps": {"gdpClientCache": encoded}}}})
    return (
        f'<html><head><title>Home | Zillow</title></head><body><div id="__next"></div>'
        f'<script id="__NEXT_DATA__" type="application/json">{raw_next_data}</script></body></html>'
    )


def jpeg(name: str, *widths: int) -> dict[str, Any]:
    return {
        "caption": "",
        "mixedSources": {"jpeg": [{"url": f"{FP}/{name}-cc_ft_{w}.jpg", "width": w} for w in widths]},
    }


def home(**prop: Any) -> dict[str, Any]:
    return {'ForSaleShopperPlatformFullRenderQuery{"zpid":1}': {"property": {"zpid": 1, **prop}}}


def parse(html: str) -> list[tuple[str | None, int | None]]:
    return [(r.url, r.declared_width) for r in parse_home_page(html, property_id="p1")]


# --- the recorded page -------------------------------------------------------------------------------------


def test_recorded_page_gives_widest_jpeg_of_each_photo_in_order() -> None:
    refs = parse_home_page(RECORDED, property_id="p1")
    assert [(r.url, r.declared_width) for r in refs] == [
        (f"{FP}/aaa-cc_ft_1536.jpg", 1536),
        (f"{FP}/bbb-cc_ft_1536.jpg", 1536),
        (f"{FP}/ccc-cc_ft_1344.jpg", 1344),
    ]
    assert [r.order for r in refs] == [0, 1, 2]
    assert {r.source for r in refs} == {"zillow"}
    assert [r.key for r in refs] == [None, "Kitchen", None]


def test_recorded_page_is_not_a_block_page_and_has_a_home() -> None:
    assert not is_block_page(RECORDED)
    assert has_home(RECORDED)


# --- picking a copy ----------------------------------------------------------------------------------------


def test_widest_wins_wherever_it_is_and_a_copy_without_width_ranks_last() -> None:
    photo = {
        "mixedSources": {
            "jpeg": [
                {"url": f"{FP}/x-nowidth.jpg"},
                {"url": f"{FP}/x-1536.jpg", "width": "1536"},
                {"url": f"{FP}/x-576.jpg", "width": 576.0},
            ]
        }
    }
    assert parse(page(home(responsivePhotos=[photo]))) == [(f"{FP}/x-1536.jpg", 1536)]


def test_only_copies_without_width_still_give_a_photo() -> None:
    photo = {"mixedSources": {"jpeg": [{"url": f"{FP}/y.jpg"}]}}
    assert parse(page(home(responsivePhotos=[photo]))) == [(f"{FP}/y.jpg", None)]


def test_webp_then_plain_url_when_there_is_no_jpeg() -> None:
    webp = {
        "mixedSources": {
            "jpeg": [],
            "webp": [{"url": f"{FP}/w-384.webp", "width": 384}, {"url": f"{FP}/w-1536.webp", "width": 1536}],
        }
    }
    plain = {"caption": "Pool", "url": "//photos.zillowstatic.com/fp/p-p_f.jpg"}
    nothing = {"caption": "no picture", "mixedSources": {}}
    refs = parse_home_page(page(home(responsivePhotos=[webp, plain, nothing])), property_id="p1")
    assert [(r.url, r.declared_width, r.key) for r in refs] == [
        (f"{FP}/w-1536.webp", 1536, None),
        (f"{FP}/p-p_f.jpg", None, "Pool"),
    ]


def test_photo_id_is_the_key_when_present() -> None:
    photo = {**jpeg("k", 1536), "id": 42, "caption": "Front"}
    assert [r.key for r in parse_home_page(page(home(responsivePhotos=[photo])), property_id="p1")] == ["42"]


def test_repeated_photo_is_kept_once_and_order_renumbered() -> None:
    photos = [jpeg("a", 384, 1536), jpeg("a", 1536), jpeg("b", 1536)]
    refs = parse_home_page(page(home(responsivePhotos=photos)), property_id="p1")
    assert [(r.order, r.url) for r in refs] == [(0, f"{FP}/a-cc_ft_1536.jpg"), (1, f"{FP}/b-cc_ft_1536.jpg")]


# --- where the gallery lives -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["photos", "originalPhotos"])
def test_older_gallery_fields_are_read(field: str) -> None:
    assert parse(page(home(**{field: [jpeg("o", 768, 1536)]}))) == [(f"{FP}/o-cc_ft_1536.jpg", 1536)]


def test_empty_responsive_photos_falls_back_to_original_photos() -> None:
    html = page(home(responsivePhotos=[], originalPhotos=[jpeg("o", 1536)]))
    assert parse(html) == [(f"{FP}/o-cc_ft_1536.jpg", 1536)]


def test_home_without_photos_is_empty() -> None:
    assert parse(page(home(responsivePhotos=[], photoCount=0))) == []


def test_property_with_the_gallery_wins_over_an_earlier_id_only_entry() -> None:
    cache = {
        'VariantQuery{"zpid":1,"altId":null}': {"property": {"zpid": 1, "altId": None}},
        "SomethingElse": {"data": 1},
        **home(responsivePhotos=[jpeg("g", 1536)]),
    }
    assert parse(page(cache)) == [(f"{FP}/g-cc_ft_1536.jpg", 1536)]


def test_cache_already_decoded_is_accepted() -> None:
    raw = json.dumps(
        {"props": {"pageProps": {"componentProps": {"gdpClientCache": home(responsivePhotos=[jpeg("d", 1536)])}}}}
    )
    assert parse(page(None, raw_next_data=raw)) == [(f"{FP}/d-cc_ft_1536.jpg", 1536)]


# --- what is wrong, named ------------------------------------------------------------------------------------

NEXT = '{"props":{"pageProps":{"componentProps":{"gdpClientCache":%s}}}}'
BROKEN: list[tuple[str, str, str]] = [
    ("no script", "<html><body><h1>Zillow</h1></body></html>", "no __NEXT_DATA__ script"),
    ("truncated page", RECORDED[: RECORDED.index("</script>\n</body>")], "__NEXT_DATA__ script is not closed"),
    ("garbled next data", page(None, raw_next_data='{"props": {'), "__NEXT_DATA__ is not valid JSON"),
    ("next data a list", page(None, raw_next_data="[1, 2]"), "__NEXT_DATA__ is not a JSON object"),
    (
        "no componentProps",
        page(None, raw_next_data='{"props":{"pageProps":{}}}'),
        "props.pageProps.componentProps is missing",
    ),
    ("pageProps a string", page(None, raw_next_data='{"props":{"pageProps":"x"}}'), "props.pageProps is not an object"),
    (
        "no cache",
        page(None, raw_next_data='{"props":{"pageProps":{"componentProps":{}}}}'),
        "props.pageProps.componentProps.gdpClientCache is missing",
    ),
    (
        "cache truncated",
        page('{"ForSaleShopperPlatformFullRenderQuery{}": {"property": {"zpid'),
        "gdpClientCache is not valid JSON",
    ),
    ("cache a number", page(None, raw_next_data=NEXT % "12"), "gdpClientCache is not a JSON string"),
    ("cache a list", page([1, 2]), "gdpClientCache is not a JSON object"),
    ("no property", page({"Q{}": {"data": {}}, "R": 3}), "gdpClientCache has no entry with a property"),
    (
        "property a list",
        page({'ForSaleShopperPlatformFullRenderQuery{"zpid":1}': {"property": [1]}}),
        "gdpClientCache[ForSaleShopperPlatformFullRenderQuery].property is not an object",
    ),
    ("no gallery", page(home(price=1)), "property has no responsivePhotos, photos, originalPhotos"),
    ("gallery an object", page(home(responsivePhotos={"0": {}})), "property.responsivePhotos is not a list"),
    ("photo a string", page(home(photos=["x.jpg"])), "property.photos[0] is not an object"),
    (
        "mixedSources a list",
        page(home(responsivePhotos=[{"mixedSources": []}])),
        "property.responsivePhotos[0].mixedSources is not an object",
    ),
    (
        "jpeg an object",
        page(home(responsivePhotos=[{"mixedSources": {"jpeg": {"url": "u"}}}])),
        "property.responsivePhotos[0].mixedSources.jpeg is not a list",
    ),
    (
        "width a word",
        page(home(responsivePhotos=[{"mixedSources": {"jpeg": [{"url": "u", "width": "wide"}]}}])),
        "property.responsivePhotos[0].mixedSources.jpeg[0].width is not a number",
    ),
    (
        "width a superscript digit",  # '²'.isdigit() is true and int('²') a ValueError: was an unnamed crash
        page(home(responsivePhotos=[{"mixedSources": {"jpeg": [{"url": "u", "width": "²"}]}}])),
        "property.responsivePhotos[0].mixedSources.jpeg[0].width is not a number",
    ),
    (
        "url not a URL",
        page(home(responsivePhotos=[{"url": "https://[::1/x.jpg"}])),
        "property.responsivePhotos[0].url is not a URL",
    ),
    (
        "next data nested too deep",  # the decoder's RecursionError escaped as such
        page(None, raw_next_data="[" * 100_000),
        "__NEXT_DATA__ is not valid JSON",
    ),
    ("cache nested too deep", page("[" * 100_000), "gdpClientCache is not valid JSON"),
    ("two photos, both bad", page(home(photos=[7, []])), "property.photos[0] is not an object (and 1 more"),
    (
        "width a bool",
        page(home(responsivePhotos=[{"mixedSources": {"jpeg": [{"url": "u", "width": True}]}}])),
        "jpeg[0].width is not a number",
    ),
    (
        "url a number",
        page(home(responsivePhotos=[{"mixedSources": {"jpeg": [{"url": 7, "width": 1}]}}])),
        "property.responsivePhotos[0].mixedSources.jpeg[0].url is not a string",
    ),
]


@pytest.mark.parametrize(("html", "message"), [(h, m) for _, h, m in BROKEN], ids=[i for i, _, _ in BROKEN])
def test_malformed_page_is_a_parse_error_naming_the_problem(html: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^Zillow home page: ") as info:
        parse_home_page(html, property_id="p1")
    assert message in str(info.value)


def test_a_malformed_photo_is_left_out_and_named_the_rest_are_kept() -> None:
    bad = {"mixedSources": {"jpeg": [{"url": "u", "width": "wide"}]}}
    html = page(home(responsivePhotos=[jpeg("a", 1536), bad, "x.jpg", jpeg("b", 768)]))
    parsed = read_home_page(html, property_id="p1")
    assert [(r.url, r.order) for r in parsed.items] == [(f"{FP}/a-cc_ft_1536.jpg", 0), (f"{FP}/b-cc_ft_768.jpg", 1)]
    assert [(p.path, p.kind) for p in parsed.problems] == [
        ("property.responsivePhotos[1]", "malformed"),
        ("property.responsivePhotos[2]", "malformed"),
    ]
    assert parsed.problems[0].message == (
        "Zillow home page: property.responsivePhotos[1].mixedSources.jpeg[0].width is not a number"
    )
    assert parse_home_page(html, property_id="p1") == list(parsed.items)  # the old form logs, does not raise


def test_a_gallery_of_junk_falls_back_to_an_older_list() -> None:
    html = page(home(responsivePhotos=[1, 2], originalPhotos=[jpeg("o", 1536)]))
    parsed = read_home_page(html, property_id="p1")
    assert [r.url for r in parsed.items] == [f"{FP}/o-cc_ft_1536.jpg"] and parsed.problems == ()


def test_photos_beyond_max_photos_are_one_named_problem() -> None:
    html = page(home(responsivePhotos=[jpeg(f"n{i}", 1536) for i in range(600)]))
    parsed = read_home_page(html, property_id="p1")
    assert len(parsed.items) == 500 and parsed.items[-1].url == f"{FP}/n499-cc_ft_1536.jpg"
    assert [(p.kind, p.count, p.path) for p in parsed.problems] == [
        ("too_many_photos", 100, "property.responsivePhotos")
    ]
    assert len(read_home_page(html, property_id="p1", max_photos=2).items) == 2


@pytest.mark.parametrize("junk", ["<script ", "<div ", "<title>", "<div id=", "<script>"])
def test_pages_of_unclosed_tags_are_read_in_linear_time(junk: str) -> None:
    """The old tag regexes backtracked from every tag to the end: 40 KB of '<script ' took 1.6 s."""
    html = junk * 200_000
    started = time.perf_counter()
    assert not is_block_page(html)
    assert not has_home(html)
    assert time.perf_counter() - started < 2.0


def test_unclosed_tags_at_the_end_of_a_page() -> None:
    assert is_block_page("<html><div id=px-captcha")  # a truncated wall is a wall (the old regex missed it)
    assert not is_block_page("<title>Access to this page has been denied")  # the old regex needed </title>
    assert not has_home('<script id="__NEXT_DATA__" {"props": 1}')  # an unclosed tag holds no script


# --- the bot wall ----------------------------------------------------------------------------------------------


def test_perimeterx_page_is_a_block_page() -> None:
    assert is_block_page(PX_PAGE)
    assert is_block_page("<html><head><title>\n  Access to this page\n has been denied </title></head></html>")
    assert is_block_page("<html><body><div class='wrap' id='px-captcha'></div></body></html>")


def test_pages_that_merely_mention_the_wall_are_not_block_pages() -> None:
    listing = home(description='Not a <div id="px-captcha"> but text', responsivePhotos=[jpeg("a", 1536)])
    assert not is_block_page(page(listing))
    assert not is_block_page('<div class="px-captcha-error-container"></div><title>Zillow</title>')


def test_block_page_is_not_parsed_as_a_home() -> None:
    assert not has_home(PX_PAGE)
    with pytest.raises(ParseError, match="no __NEXT_DATA__ script"):
        parse_home_page(PX_PAGE, property_id="p1")


def test_search_results_page_has_no_home() -> None:
    search = page(None, raw_next_data='{"props":{"pageProps":{"searchPageState":{"cat1":{}}}}}')
    assert not has_home(search)
    assert not has_home("<html><body>No results</body></html>")


# --- URLs -------------------------------------------------------------------------------------------------------


def test_home_url_by_zpid_uses_an_address_slug() -> None:
    prop = Property("p1", "4732 E Camelback Rd", city="Phoenix", state="AZ", zip="85018", zpid=" 7000001 ")
    assert home_url("https://www.zillow.com/", prop) == (
        "https://www.zillow.com/homedetails/4732-E-Camelback-Rd-Phoenix-AZ-85018/7000001_zpid/"
    )


def test_home_url_without_zpid_is_the_address_search() -> None:
    prop = Property("p2", "123 1/2 Main St #4", city="Phoenix", zip="85014")
    assert home_url("http://127.0.0.1:8000/zillow", prop) == (
        "http://127.0.0.1:8000/zillow/homes/123%201%2F2%20Main%20St%20%234%2C%20Phoenix%2C%2085014_rb/"
    )
