"""Read the user's properties file (CSV or JSON lines) as a stream of validated Property rows.

Streaming matters: a file may hold a million rows, so only the seen property ids are kept.
Every failure is an InputError naming file, row and field, so the user can fix the file.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from homeshots.core.addresses import normalize
from homeshots.core.errors import InputError
from homeshots.core.models import Property
from homeshots.core.settings import SOURCES

FIELDS = ("address", "city", "state", "zip", "apn", "mls_listing_key", "zpid", "redfin_url", "property_id", "sources")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_BOM = b"\xef\xbb\xbf"
_APN = re.compile(r"^[0-9]{3}-?[0-9]{2}-?[0-9]{3,4}[A-Z]?$")
_ZIP = re.compile(r"^[0-9]{5}(-[0-9]{4})?$")
_STATE = re.compile(r"^[A-Za-z]{2}$")
_ZPID = re.compile(r"^[0-9]+$")
_MLS_KEY = re.compile(r"^[A-Za-z0-9._:-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROPERTY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_LINE_BYTES = 64 * 1024
"""A line (with its line ending) longer than this is refused unread: no row needs it, and a stray
100 MB line without a newline must not be held in memory or reach the validators."""
MAX_LENGTH = {
    "address": 200, "city": 100, "apn": 20, "mls_listing_key": 64, "zpid": 20, "redfin_url": 2048, "sources": 100,
}  # fmt: skip
_SOURCE_LIST = re.compile(r"[\s,;|]+")
"""Longest value per field, in characters (state, zip and property_id have their own shapes)."""
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Unicode categories a value must not hold: controls, invisible format characters (zero-width, bidi
overrides, BOM), lone surrogates (from JSON escapes; they cannot be written as UTF-8), private use, and
the line and paragraph separators U+2028/U+2029 that split a line in other readers."""
Record = dict[str, str]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row skipped under skip_bad_rows: kept so the run report can list it."""

    file: str
    row: int
    field: str | None
    message: str

    def to_dict(self) -> dict[str, object]:
        """JSON form for the run report."""
        return {"file": self.file, "row": self.row, "field": self.field, "message": self.message}


_NOT_DIGITS = re.compile(r"[^0-9]")


def derive_property_id(address: str, city: str | None, state: str | None, zip: str | None) -> str:
    """Stable id for rows without one: the same address written differently gets the same id."""
    zip5 = _NOT_DIGITS.sub("", zip or "")[:5]
    key = "|".join((normalize(address), normalize(city, abbreviate=False), normalize(state), zip5))
    return "p-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def read_properties(path: Path, *, skip_bad_rows: bool = False) -> Iterator[Property | BadRow]:
    """Yield each row as a Property; a bad row raises, or with skip_bad_rows becomes a BadRow.

    The file type is checked now (not on first iteration) so a wrong file fails fast.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, str(path))
    elif suffix in JSONL_SUFFIXES:
        rows = _jsonl_rows(path, str(path))
    else:
        raise InputError(str(path), 0, None, f"unknown file type {suffix or '(none)'!r}: use .csv or .jsonl")
    return _validated(str(path), rows, skip_bad_rows)


def _validated(
    name: str, rows: Iterator[tuple[int, Record | InputError]], skip_bad_rows: bool
) -> Iterator[Property | BadRow]:
    """Validate rows and catch duplicate ids; fatal errors from the readers always propagate."""
    seen: dict[str, int] = {}
    for row, item in rows:
        try:
            if isinstance(item, InputError):
                raise item
            prop = _to_property(name, row, item)
            first = seen.get(prop.property_id)
            if first is not None:
                msg = f"duplicate property_id {prop.property_id!r} (first seen on row {first})"
                raise InputError(name, row, "property_id", msg)
            seen[prop.property_id] = row
        except InputError as exc:
            if not skip_bad_rows:
                raise
            yield BadRow(exc.file, exc.row, exc.field, exc.message)
            continue
        yield prop


def _shown(value: str, limit: int = 60) -> str:
    """``repr`` of a value, cut short: the message for a 100 KB address must not be 100 KB."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _field_name(name: str) -> str:
    """An unknown column or key as the error's field, cut short like its value."""
    return name if len(name) <= 60 else name[:60] + "..."


def _hidden_character(value: str) -> str | None:
    """Why ``value`` cannot be shown on one line (a control, invisible or separator character), or None."""
    if _CONTROL.search(value):
        return "line break or control character in value (unbalanced quote?)"
    if value.isascii():
        return None
    for ch in value:
        category = unicodedata.category(ch)
        if category in _HIDDEN:
            kind = "line break" if category in ("Zl", "Zp") or ch == "\x85" else "unprintable character"
            return f"{kind} U+{ord(ch):04X} in value"
    return None


def _url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL with a host, or None; urlsplit's ValueError is a message here."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "redfin_url is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "redfin_url must be an http(s) URL"
    return None


def _to_property(name: str, row: int, record: Record) -> Property:
    """Check each field's length, characters and shape; empty strings mean absent."""
    v: dict[str, str | None] = {f: (record.get(f) or "").strip() or None for f in FIELDS}

    def bad(field: str, message: str) -> InputError:
        return InputError(name, row, field, f"{message}, got {_shown(v[field] or '')}")

    for field, value in v.items():
        if not value:
            continue
        limit = MAX_LENGTH.get(field)
        if limit is not None and len(value) > limit:
            raise bad(field, f"{field} must be at most {limit} characters ({len(value)} given)")
        if (problem := _hidden_character(value)) is not None:
            raise bad(field, problem)
    if not v["address"]:
        raise InputError(name, row, "address", "address is required")
    if v["state"]:
        if not _STATE.match(v["state"]):
            raise bad("state", "state must be 2 letters")
        v["state"] = v["state"].upper()
    if v["zip"] and not _ZIP.match(v["zip"]):
        raise bad("zip", "zip must be 5 digits or ZIP+4 (12345-6789)")
    if v["apn"]:
        v["apn"] = v["apn"].upper()
        if not _APN.match(v["apn"]):
            raise bad("apn", "apn must look like 123-45-678 or 123-45-6789A")
    if v["mls_listing_key"] and not _MLS_KEY.match(v["mls_listing_key"]):
        raise bad("mls_listing_key", "mls_listing_key must be letters, digits and . _ : -")
    if v["zpid"] and not _ZPID.match(v["zpid"]):
        raise bad("zpid", "zpid must be digits")
    if v["redfin_url"] and (problem := _url_problem(v["redfin_url"])) is not None:
        raise bad("redfin_url", problem)
    if v["property_id"] and not _PROPERTY_ID.match(v["property_id"]):
        raise bad("property_id", "property_id must be 1-128 of letters, digits and . _ : -")
    chosen = None
    if v["sources"]:
        chosen = tuple(dict.fromkeys(s.lower() for s in _SOURCE_LIST.split(v["sources"]) if s))
        if not chosen or any(s not in SOURCES for s in chosen):
            raise bad("sources", f"sources must name some of {', '.join(SOURCES)}")
    v.pop("sources")
    pid = v.pop("property_id") or derive_property_id(v["address"], v["city"], v["state"], v["zip"])
    return Property(property_id=pid, sources=chosen, **v)  # type: ignore[arg-type]


def _lines(fh: BinaryIO) -> Iterator[bytes | None]:
    """Each line of the file, or None for a line over MAX_LINE_BYTES, which is skipped without being held."""
    while line := fh.readline(MAX_LINE_BYTES + 1):
        if len(line) <= MAX_LINE_BYTES:
            yield line
            continue
        while not line.endswith(b"\n") and (line := fh.readline(MAX_LINE_BYTES)):
            pass  # the rest of the long line, read in bounded pieces
        yield None


_TOO_LONG = f"line is longer than {MAX_LINE_BYTES // 1024} KiB; not read"


def _csv_rows(path: Path, name: str) -> Iterator[tuple[int, Record | InputError]]:
    """Rows numbered as a spreadsheet shows them (header is row 1); lines are decoded one by one
    so a non-UTF-8 line spoils only its own row."""
    with path.open("rb") as fh:
        bad_utf8: list[str] = []  # what spoiled the row being read: bad UTF-8, an overlong line, a CSV error

        def lines() -> Iterator[str]:
            for number, raw in enumerate(_lines(fh)):
                if raw is None:
                    bad_utf8.append(_TOO_LONG)
                    yield "\n"  # keeps the row count; the row is reported, never parsed
                    continue
                try:
                    yield (raw.removeprefix(_BOM) if number == 0 else raw).decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad_utf8.append(f"row is not valid UTF-8: {exc}")
                    yield raw.decode("utf-8", "replace")

        reader = csv.reader(lines())
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise InputError(name, 1, None, f"unreadable header: {exc}") from None
        if bad_utf8:
            raise InputError(name, 1, None, f"header: {bad_utf8[0]}")
        if not header or not any(h.strip() for h in header):
            raise InputError(name, 1, None, "empty file: the first row must name the columns")
        cols = [h.strip().lower() for h in header]
        for col in cols:
            if col and col not in FIELDS:
                raise InputError(name, 1, _field_name(col), f"unknown column {_shown(col)}; known: {', '.join(FIELDS)}")
            if col and cols.count(col) > 1:
                raise InputError(name, 1, col, f"column {col!r} appears twice")
        if "address" not in cols:
            raise InputError(name, 1, "address", "missing required column 'address'")
        for row in itertools.count(2):
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                bad_utf8.append(f"unreadable CSV row: {exc}")
                values = []
            named = [(c, v) for c, v in itertools.zip_longest(cols, values, fillvalue="") if c or v.strip()]
            if bad_utf8:
                yield row, InputError(name, row, None, bad_utf8[0])
                bad_utf8.clear()
            elif any(not c for c, _ in named):
                yield row, InputError(name, row, None, "row has a value in a column with no header")
            elif any(v.strip() for _, v in named):
                yield row, dict(named)


def _jsonl_rows(path: Path, name: str) -> Iterator[tuple[int, Record | InputError]]:
    """One JSON object per line, row = line number; blank lines are skipped."""
    with path.open("rb") as fh:
        for row, raw in enumerate(_lines(fh), 1):
            if raw is None:
                yield row, InputError(name, row, None, _TOO_LONG)
                continue
            try:
                text = (raw.removeprefix(_BOM) if row == 1 else raw).decode("utf-8")
                if not text.strip():
                    continue
                item: Record | InputError = _json_record(name, row, text)
            except UnicodeDecodeError as exc:
                item = InputError(name, row, None, f"line is not valid UTF-8: {exc}")
            except InputError as exc:
                item = exc
            yield row, item


def _json_record(name: str, row: int, text: str) -> Record:
    """Parse one line; numbers become strings (zip, zpid), nested values are refused."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise InputError(name, row, None, f"not valid JSON (one object per line): {exc}") from None
    except RecursionError:  # the decoder's own nesting limit; a row is one flat object anyway
        raise InputError(name, row, None, "not valid JSON (one object per line): nested too deeply") from None
    if not isinstance(obj, dict):
        raise InputError(name, row, None, f"expected a JSON object, got {type(obj).__name__}")
    record: Record = {}
    for key, value in obj.items():
        if key not in FIELDS:
            raise InputError(name, row, _field_name(key), f"unknown key {_shown(key)}; known: {', '.join(FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, str | int | float | None):
            raise InputError(name, row, key, f"must be a string or number, got {type(value).__name__}")
        if isinstance(value, float):
            if not value.is_integer():
                raise InputError(name, row, key, f"must be a string or whole number, got {value!r}")
            value = int(value)
        if value is not None:
            record[key] = str(value)
    return record
