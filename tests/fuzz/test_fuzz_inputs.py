"""Fuzzing the properties-file reader: only InputError escapes, every Property it yields keeps the limits,
and files written from well-formed rows read back as those rows, in CSV and in JSON lines."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from homeshots.core.errors import InputError
from homeshots.core.inputs import FIELDS, MAX_LENGTH, BadRow, derive_property_id, read_properties
from homeshots.core.models import Property
from tests.fuzz.strategies import SPECIAL, fuzz

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
WORD = st.text(st.sampled_from(LETTERS), min_size=1, max_size=10)
PADDING = st.sampled_from(["", " ", "  "])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the module: each example overwrites its file (function-scoped tmp_path and
    hypothesis do not mix)."""
    return tmp_path_factory.mktemp("fuzz-inputs")


@st.composite
def good_rows(draw: st.DrawFn, i: int) -> tuple[dict[str, str], Property]:
    """A valid row (values maybe padded with spaces) and the Property it must read as."""
    address = f"{i + 1} {draw(WORD)} {draw(st.sampled_from(['St', 'Ave', 'Road']))}"
    values: dict[str, str | None] = {"address": address}
    values["city"] = draw(st.none() | st.text(st.sampled_from(LETTERS + " .-'éñ"), max_size=100).map(str.strip))
    values["state"] = draw(st.none() | st.text(st.sampled_from(LETTERS), min_size=2, max_size=2))
    values["zip"] = draw(st.none() | st.from_regex(r"\A[0-9]{5}(-[0-9]{4})?\Z"))
    values["apn"] = draw(st.none() | st.from_regex(r"\A[0-9]{3}-?[0-9]{2}-?[0-9]{3,4}[A-Za-z]?\Z"))
    values["mls_listing_key"] = draw(st.none() | st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z"))
    values["zpid"] = draw(st.none() | st.from_regex(r"\A[0-9]{1,20}\Z"))
    values["redfin_url"] = draw(st.none() | WORD.map(lambda w: f"https://www.redfin.com/AZ/{w}/home/1"))
    values["property_id"] = draw(st.none() | st.just(f"id-{i}"))
    clean = {k: v for k, v in values.items() if v}
    row = {k: draw(PADDING) + v + draw(PADDING) for k, v in clean.items()}
    expected = Property(
        property_id=clean.get("property_id")
        or derive_property_id(address, clean.get("city"), clean.get("state"), clean.get("zip")),
        address=address,
        city=clean.get("city"),
        state=clean["state"].upper() if "state" in clean else None,
        zip=clean.get("zip"),
        apn=clean["apn"].upper() if "apn" in clean else None,
        mls_listing_key=clean.get("mls_listing_key"),
        zpid=clean.get("zpid"),
        redfin_url=clean.get("redfin_url"),
    )
    return row, expected


@st.composite
def good_files(draw: st.DrawFn) -> list[tuple[dict[str, str], Property]]:
    return [draw(good_rows(i)) for i in range(draw(st.integers(0, 8)))]


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    path.write_bytes(buffer.getvalue().encode("utf-8", "surrogatepass"))


def write_jsonl(path: Path, rows: list[Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@fuzz(80)
@given(good_files(), st.permutations(FIELDS))
def test_well_formed_files_read_back_as_their_rows(workdir: Path, rows: list[Any], columns: list[str]) -> None:
    expected = [p for _, p in rows]
    path = workdir / "good.csv"
    write_csv(path, [r for r, _ in rows], list(columns))
    assert list(read_properties(path)) == expected
    path = workdir / "good.jsonl"
    write_jsonl(path, [r for r, _ in rows])
    assert list(read_properties(path)) == expected


def check_property(prop: Property) -> None:
    """What any Property read from any file must be: the limits hold, nothing invisible got through."""
    for field in FIELDS:
        value = getattr(prop, field)
        if value is None:
            continue
        assert value == value.strip() and value
        assert len(value) <= MAX_LENGTH.get(field, 128)
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for c in value), field
        value.encode("utf-8")  # no lone surrogates: every value can be written out again


VALUES = st.sampled_from([s for s in SPECIAL if isinstance(s, str)]) | st.text(max_size=30)
JSON_VALUES = VALUES | st.none() | st.integers() | st.floats() | st.booleans() | st.lists(st.integers(), max_size=2)
KEYS = st.sampled_from(FIELDS) | st.sampled_from(["", "Address", "bedrooms", " zip "])


@fuzz(100)
@given(st.lists(st.dictionaries(KEYS, JSON_VALUES, max_size=6), max_size=6), st.booleans())
@example([{"address": "1 A St", "redfin_url": "http://[::1/home/1"}], False)  # urlparse's ValueError escaped
@example([{"address": "1 A St", "city": "M\ud800"}], False)  # a lone surrogate went through
@example([{"address": "1 A\u2028St"}], False)
def test_fuzzed_jsonl_rows_raise_only_input_error(workdir: Path, rows: list[Any], skip: bool) -> None:
    path = workdir / "fuzz.jsonl"
    write_jsonl(path, rows)
    read_all(path, skip)


@fuzz(100)
@given(
    st.lists(st.sampled_from(FIELDS) | st.sampled_from(["", "Address", "extra"]), min_size=1, max_size=6),
    st.lists(st.lists(VALUES.filter(lambda v: "\ud800" not in v), max_size=7), max_size=6),
    st.booleans(),
)
def test_fuzzed_csv_rows_raise_only_input_error(workdir: Path, columns: list[str], rows: list[Any], skip: bool) -> None:
    path = workdir / "fuzz.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    read_all(path, skip)


LINES = st.sampled_from([
    b"address,city\n", b"1 A St,Mesa\n", b'"2 B St","Te\nmpe"\n', b'"unbalanced,\n', b"\xff\xfe\n", b"\xef\xbb\xbf",
    b'{"address": "1 A St"}\n', b'{"address": 5}\n', b"[" * 70_000 + b"\n", b"x" * 70_000, b"\r\n", b"\x00", b",,,\n",
    "\u2028".encode(), b'{"address": "\\ud800"}\n', b"\n",
])  # fmt: skip


@fuzz(100)
@given(
    st.lists(LINES, max_size=8).map(b"".join) | st.binary(max_size=300),
    st.sampled_from([".csv", ".jsonl"]),
    st.booleans(),
)
@example(b"[" * 60_000 + b"\n", ".jsonl", False)  # RecursionError from json.loads escaped
def test_raw_files_raise_only_input_error(workdir: Path, content: bytes, suffix: str, skip: bool) -> None:
    path = workdir / f"raw{suffix}"
    path.write_bytes(content)
    read_all(path, skip)


def read_all(path: Path, skip: bool) -> None:
    """Read the whole file: an InputError may end it; anything else is a bug. Every row is accounted for."""
    try:
        for item in read_properties(path, skip_bad_rows=skip):
            if isinstance(item, Property):
                check_property(item)
            else:
                assert skip and isinstance(item, BadRow) and item.row >= 1
                assert len(item.message) < 1000
    except InputError as exc:
        assert len(str(exc)) < 1500 and exc.file == str(path)
