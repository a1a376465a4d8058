"""Tests for reading the properties file: formats, ids, and errors that name file, row and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from homeshots.core.errors import InputError
from homeshots.core.inputs import BadRow, derive_property_id, read_properties
from homeshots.core.models import Property

HEADER = "address,city,state,zip,apn,mls_listing_key,zpid,redfin_url,property_id\n"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """Write a temp input file; bytes let a test plant invalid UTF-8."""
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def jsonl(*rows: object) -> str:
    """One JSON value per line."""
    return "".join(json.dumps(r) + "\n" for r in rows)


def raised(path: Path) -> InputError:
    """Read the whole file and return the InputError it raises."""
    with pytest.raises(InputError) as info:
        list(read_properties(path))
    return info.value


def assert_names(err: InputError, path: Path, row: int, field: str | None) -> None:
    """The message must let a person find the problem: file, row, field."""
    assert (err.file, err.row, err.field) == (str(path), row, field)
    assert str(path) in str(err)
    assert f"row {row}" in str(err)
    if field:
        assert repr(field) in str(err)


def test_good_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        HEADER
        + " 4732 E Camelback Rd , Phoenix, az,85018,123-45-678a,MLS1,12345,https://www.redfin.com/x,own-1\n"
        + "1 Main St,,,,,,,,\n",
    )
    props = list(read_properties(path))
    assert props[0] == Property(
        property_id="own-1",
        address="4732 E Camelback Rd",
        city="Phoenix",
        state="AZ",
        zip="85018",
        apn="123-45-678A",
        mls_listing_key="MLS1",
        zpid="12345",
        redfin_url="https://www.redfin.com/x",
    )
    assert props[1] == Property(property_id=derive_property_id("1 Main St", None, None, None), address="1 Main St")


def test_csv_columns_subset_any_order_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "City,Address\r\nMesa,1 A St\r\n\r\n,,\nTempe,2 B St\r\n")
    props = list(read_properties(path))
    assert [(p.address, p.city) for p in props] == [("1 A St", "Mesa"), ("2 B St", "Tempe")]


def test_csv_quoted_multiline_field_keeps_row_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", 'address,city\n"1 A St",Mesa\n"2 B St","Te\nmpe"\n,Tempe\n')
    out = list(read_properties(path, skip_bad_rows=True))
    assert [(b.row, b.field) for b in out if isinstance(b, BadRow)] == [(3, "city"), (4, "address")]


def test_good_jsonl_with_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.jsonl",
        jsonl({"address": "1 A St", "zip": 85001, "zpid": 7777, "city": None})
        + "\n   \n"
        + jsonl({"address": "2 B St", "zip": "85001-1234", "property_id": "x:1"}),
    )
    props = list(read_properties(path))
    assert props[0].zip == "85001" and props[0].zpid == "7777" and props[0].city is None
    assert props[1].property_id == "x:1" and props[1].zip == "85001-1234"


@pytest.mark.parametrize("suffix", [".ndjson", ".json", ".JSONL"])
def test_jsonl_extensions(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, "p" + suffix, jsonl({"address": "1 A St"}))
    assert [p.address for p in read_properties(path)] == ["1 A St"]  # type: ignore[union-attr]


def test_derived_id_stable_across_spellings() -> None:
    a = derive_property_id("4732 E. Camelback Road", "Phoenix", "AZ", "85018-1234")
    b = derive_property_id("4732  e camelback rd", "phoenix", "az", "85018")
    c = derive_property_id("4732 East Camelback Rd.", " PHOENIX ", "Az", "85018")
    assert a == b == c
    assert a.startswith("p-") and len(a) == 18
    assert a != derive_property_id("4733 E Camelback Rd", "Phoenix", "AZ", "85018")
    assert a != derive_property_id("4732 E Camelback Rd", "Scottsdale", "AZ", "85018")


def test_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "p.xlsx", "address\n")
    with pytest.raises(InputError) as info:
        read_properties(path)
    assert info.value.row == 0 and "use .csv or .jsonl" in str(info.value)


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        (",Phoenix,AZ,,,,,,", "address", "required"),
        ("1 A St,,Arizona,,,,,,", "state", "2 letters"),
        ("1 A St,,,8501,,,,,", "zip", "5 digits"),
        ("1 A St,,,,12-345-678,,,,", "apn", "apn"),
        ("1 A St,,,,,,z123,,", "zpid", "digits"),
        ("1 A St,,,,,,,ftp://redfin.com/x,", "redfin_url", "http"),
        ("1 A St,,,,,,,www.redfin.com/x,", "redfin_url", "http"),
        ("1 A St,,,,,,,,has space", "property_id", "property_id"),
    ],
)
def test_csv_field_errors(tmp_path: Path, line: str, field: str, words: str) -> None:
    path = write(tmp_path, "p.csv", HEADER + "9 Z St,,,,,,,,\n" + line + "\n")
    err = raised(path)
    assert_names(err, path, 3, field)
    assert words in err.message


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"address": " "}, "address"),
        ({"city": "Mesa"}, "address"),
        ({"address": "1 A St", "zip": 123}, "zip"),
        ({"address": "1 A St", "zpid": 1.5}, "zpid"),
        ({"address": "1 A St", "zpid": True}, "zpid"),
        ({"address": "1 A St", "city": {"name": "Mesa"}}, "city"),
        ({"address": "1 A St", "apn": ["123-45-678"]}, "apn"),
        ({"address": "1 A St", "bedrooms": 3}, "bedrooms"),
    ],
)
def test_jsonl_field_errors(tmp_path: Path, obj: dict[str, object], field: str) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "9 Z St"}) + jsonl(obj))
    assert_names(raised(path), path, 2, field)


@pytest.mark.parametrize("line", ["{not json", "[1, 2]", '"just a string"'])
def test_jsonl_bad_lines(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "9 Z St"}) + "\n" + line + "\n")
    assert_names(raised(path), path, 3, None)


def test_csv_unknown_column_is_fatal_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address,bedrooms\n1 A St,3\n")
    with pytest.raises(InputError) as info:
        list(read_properties(path, skip_bad_rows=True))
    assert_names(info.value, path, 1, "bedrooms")


def test_csv_missing_address_column_and_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "city\nMesa\n")
    assert_names(raised(path), path, 1, "address")
    empty = write(tmp_path, "e.csv", "")
    assert raised(empty).row in (0, 1)


def test_csv_unbalanced_quote_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", 'address,city\n"1 A St,Mesa\n2 B St,Tempe\n')
    assert_names(raised(path), path, 2, "address")


def test_csv_too_many_values(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address,city\n1 A St,Mesa,,\n2 B St,Mesa,extra\n")
    assert_names(raised(path), path, 3, None)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_duplicate_ids_name_first_row(tmp_path: Path, suffix: str) -> None:
    rows = [("4732 E. Camelback Road", "Phoenix"), ("1 A St", "Mesa"), ("4732 e camelback rd", "phoenix")]
    if suffix == ".csv":
        text = "address,city\n" + "".join(f"{a},{c}\n" for a, c in rows)
        first, dup = 2, 4
    else:
        text = jsonl(*({"address": a, "city": c} for a, c in rows))
        first, dup = 1, 3
    path = write(tmp_path, "p" + suffix, text)
    err = raised(path)
    assert_names(err, path, dup, "property_id")
    assert f"first seen on row {first}" in err.message


def test_explicit_duplicate_property_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.jsonl",
        jsonl({"address": "1 A", "property_id": "x"}, {"address": "2 B", "property_id": "x"}),
    )
    err = raised(path)
    assert "duplicate property_id 'x' (first seen on row 1)" in err.message


def test_skip_bad_rows_yields_badrow_and_keeps_good(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address,zip\n1 A St,85001\n2 B St,bad\n,85001\n3 C St,\n1 a street,85001\n")
    out = list(read_properties(path, skip_bad_rows=True))
    good = [p.address for p in out if isinstance(p, Property)]
    bad = [b for b in out if isinstance(b, BadRow)]
    assert good == ["1 A St", "3 C St"]
    assert [(b.row, b.field) for b in bad] == [(3, "zip"), (4, "address"), (6, "property_id")]
    assert bad[0].to_dict() == {"file": str(path), "row": 3, "field": "zip", "message": bad[0].message}
    assert "first seen on row 2" in bad[2].message


def test_first_bad_row_raises_after_good_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "1 A"}, {"address": ""}, {"address": "3 C"}))
    it = read_properties(path)
    assert isinstance(next(it), Property)
    with pytest.raises(InputError):
        next(it)


def test_non_utf8_csv_row(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", b"address,city\n1 A St,Mesa\n2 B St,Caf\xe9\n3 C St,Tempe\n")
    assert_names(raised(path), path, 3, None)
    out = list(read_properties(path, skip_bad_rows=True))
    assert [type(o).__name__ for o in out] == ["Property", "BadRow", "Property"]
    assert "UTF-8" in out[1].message  # type: ignore[union-attr]


def test_non_utf8_jsonl_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", b'{"address": "1 A"}\n{"address": "Caf\xe9"}\n{"address": "3 C"}\n')
    assert_names(raised(path), path, 2, None)
    out = list(read_properties(path, skip_bad_rows=True))
    assert [type(o).__name__ for o in out] == ["Property", "BadRow", "Property"]


def test_bom_handled(tmp_path: Path) -> None:
    csv_path = write(tmp_path, "p.csv", b"\xef\xbb\xbfaddress,city\n1 A St,Mesa\n")
    assert [p.address for p in read_properties(csv_path)] == ["1 A St"]  # type: ignore[union-attr]
    jsonl_path = write(tmp_path, "p.jsonl", b'\xef\xbb\xbf{"address": "1 A St"}\n')
    assert [p.address for p in read_properties(jsonl_path)] == ["1 A St"]  # type: ignore[union-attr]


def test_streams_without_reading_everything(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address\n" + "".join(f"{i} Main St\n" for i in range(50_000)))
    it = read_properties(path)
    assert next(it).address == "0 Main St"  # type: ignore[union-attr]
    assert sum(1 for _ in it) == 49_999


# --- limits: lengths, characters, line size -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("address", "1 A St " + "x" * 200, "address must be at most 200 characters"),
        ("city", "M" * 101, "city must be at most 100 characters"),
        ("apn", "1" * 21, "apn must be at most 20 characters"),
        ("mls_listing_key", "K" * 65, "mls_listing_key must be at most 64 characters"),
        ("mls_listing_key", "PHX 1001", "letters, digits and . _ : -"),
        ("mls_listing_key", "K'1", "letters, digits and . _ : -"),
        ("zpid", "1" * 21, "zpid must be at most 20 characters"),
        ("redfin_url", "https://www.redfin.com/" + "x" * 2048, "redfin_url must be at most 2048 characters"),
        ("redfin_url", "http://[::1/home/1", "redfin_url is not a valid URL"),  # urlparse's ValueError escaped
        ("redfin_url", "https://www.redfin.com:port/home/1", "redfin_url is not a valid URL"),
        ("redfin_url", "https://:443/home/1", "http(s) URL"),  # no host
        ("property_id", "p" * 129, "property_id must be 1-128"),
    ],
)
def test_field_limits(tmp_path: Path, field: str, value: str, words: str) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "9 Z St"}, {"address": "1 A St", field: value}))
    err = raised(path)
    assert_names(err, path, 2, field)
    assert words in err.message
    assert len(err.message) < 250  # the value is shown cut short


def test_values_at_the_limits_are_accepted(tmp_path: Path) -> None:
    row = {
        "address": "1 " + "A" * 198,
        "city": "C" * 100,
        "mls_listing_key": "K.1_2:3-" + "k" * 56,
        "zpid": "9" * 20,
        "redfin_url": "https://www.redfin.com/" + "x" * (2048 - 23),
    }
    path = write(tmp_path, "p.jsonl", jsonl(row))
    (prop,) = list(read_properties(path))
    assert isinstance(prop, Property) and prop.mls_listing_key == row["mls_listing_key"]


def test_huge_addresses_fail_at_validation_with_a_short_message(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address,city\n" + "1" * 60_000 + " Main St,Mesa\n")
    err = raised(path)
    assert_names(err, path, 2, "address")
    assert "at most 200 characters (60008 given)" in err.message and len(str(err)) < 300
    path = write(tmp_path, "q.csv", "address,city\n" + "1" * 100_000 + " Main St,Mesa\n")  # 100 KB: over the line cap
    err = raised(path)
    assert_names(err, path, 2, None)
    assert err.message == "line is longer than 64 KiB; not read"


@pytest.mark.parametrize(
    ("char", "words"),
    [
        ("\u2028", "line break U+2028"),
        ("\u2029", "line break U+2029"),
        ("\x85", "line break U+0085"),
        ("\u200b", "unprintable character U+200B"),  # zero-width space
        ("\u202e", "unprintable character U+202E"),  # right-to-left override
        ("\ufeff", "unprintable character U+FEFF"),
        ("\ue000", "unprintable character U+E000"),  # private use
        ("\t", "control character"),
    ],
)
def test_invisible_and_line_breaking_characters_are_refused(tmp_path: Path, char: str, words: str) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": f"1 A{char}St"}))
    err = raised(path)
    assert_names(err, path, 1, "address")
    assert words in err.message


def test_lone_surrogate_from_a_json_escape_is_refused(tmp_path: Path) -> None:
    """json.loads turns '\\ud800' into a string that cannot be encoded as UTF-8 again."""
    path = write(tmp_path, "p.jsonl", '{"address": "1 A St", "city": "M\\ud800"}\n')
    err = raised(path)
    assert_names(err, path, 1, "city")
    assert "U+D800" in err.message


def test_accented_and_non_breaking_space_values_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "12 Calle Añil\u00a0#4", "city": "Española"}))
    assert [p.city for p in read_properties(path)] == ["Española"]  # type: ignore[union-attr]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_overlong_line_is_refused_unread_and_rows_keep_their_numbers(tmp_path: Path, suffix: str) -> None:
    huge = "9" * (200 * 1024)
    if suffix == ".csv":
        text = f"address,city\n1 A St,Mesa\n{huge} B St,Mesa\n3 C St,Mesa\n"
        bad_row = 3
    else:
        text = jsonl({"address": "1 A St"}, {"address": huge}, {"address": "3 C St"})
        bad_row = 2
    path = write(tmp_path, "p" + suffix, text)
    err = raised(path)
    assert_names(err, path, bad_row, None)
    assert "longer than 64 KiB" in err.message
    out = list(read_properties(path, skip_bad_rows=True))
    assert [type(o).__name__ for o in out] == ["Property", "BadRow", "Property"]
    assert out[2].address == "3 C St"  # type: ignore[union-attr]


def test_overlong_line_without_a_newline_at_the_end(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "1 A St"}) + "x" * (300 * 1024))
    out = list(read_properties(path, skip_bad_rows=True))
    assert [type(o).__name__ for o in out] == ["Property", "BadRow"]


def test_overlong_csv_header(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", "address," + "," * (70 * 1024) + "\n1 A St\n")
    err = raised(path)
    assert err.row == 1 and "longer than 64 KiB" in err.message


def test_deeply_nested_json_line_is_an_input_error(tmp_path: Path) -> None:
    """json.loads raises RecursionError, not ValueError, for deep nesting: it escaped the reader."""
    path = write(tmp_path, "p.jsonl", "[" * 60_000 + "\n")
    err = raised(path)
    assert_names(err, path, 1, None)
    assert "nested too deeply" in err.message


def test_long_unknown_key_is_named_briefly(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", jsonl({"address": "1 A St", "k" * 10_000: 1}))
    err = raised(path)
    assert err.field is not None and len(err.field) < 70 and len(str(err)) < 400
