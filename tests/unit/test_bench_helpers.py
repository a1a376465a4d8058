"""The benchmarks' pure helpers, and the submission speed-ups keeping their behaviour."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from benchmarks.memory import parse_status_kb
from benchmarks.state_o1 import SeedJsonState, SeedState, commandstats_delta, make_fixture, property_id
from benchmarks.submission import write_csv
from homeshots.inputs import BadRow, _normalize, read_properties
from homeshots.models import Property


# --- the seed-style JSON state manager behaves like the seed's -----------------------------------------
def test_seed_state_starts_empty_without_a_file(tmp_path: Path) -> None:
    seed = SeedJsonState(tmp_path / "state.json")
    assert seed.load() == SeedState()
    assert not seed.is_completed("1 Main St")


def test_seed_mark_completed_rewrites_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    seed = SeedJsonState(path)
    seed.mark_failed("2 Oak Ave")
    seed.mark_completed("1 Main St")
    seed.mark_completed("2 Oak Ave")  # completing a failed property clears the failure

    data = json.loads(path.read_text())
    assert sorted(data["completed_properties"]) == ["1 Main St", "2 Oak Ave"]
    assert data["failed_properties"] == []
    assert data["last_updated"]
    assert path.read_text().startswith('{\n  "completed_properties"')  # indent=2, as the seed wrote it
    assert SeedJsonState(path).is_completed("2 Oak Ave")


def test_seed_mark_failed_keeps_completed(tmp_path: Path) -> None:
    """The seed's mark_failed does not discard a completed mark (its quirk, kept)."""
    seed = SeedJsonState(tmp_path / "state.json")
    seed.mark_completed("1 Main St")
    seed.mark_failed("1 Main St")
    state = seed.load()
    assert state.completed_properties == {"1 Main St"}
    assert state.failed_properties == {"1 Main St"}


def test_seed_state_round_trips_through_dict() -> None:
    state = SeedState({"a", "b"}, {"c"}, "2024-01-01T00:00:00+00:00")
    assert SeedState.from_dict(state.to_dict()) == state


# --- measurement helpers ----------------------------------------------------------------------------------
def test_commandstats_delta_sums_calls_and_usec_and_skips_info() -> None:
    before = {"cmdstat_get": {"calls": 10, "usec": 100}, "cmdstat_info": {"calls": 1, "usec": 50}}
    after = {"cmdstat_get": {"calls": 13, "usec": 160}, "cmdstat_info": {"calls": 3, "usec": 150},
             "cmdstat_sadd": {"calls": 2, "usec": 8}}
    assert commandstats_delta(before, after) == (5, 68.0)


def test_parse_status_kb() -> None:
    status = "Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n"
    assert parse_status_kb(status, "VmHWM") == 123456
    assert parse_status_kb(status, "VmRSS") == 65432
    assert parse_status_kb(status, "VmSwap") is None


def test_state_fixture_is_a_realistic_outcome() -> None:
    done, failed = make_fixture(property_id("t", 0), 0), make_fixture(property_id("t", 9), 9)
    assert done.outcome.status == "completed" and len(done.out.entries) == 3 and not done.out.image_failures
    assert failed.outcome.status == "failed" and len(failed.out.entries) == 2 and len(failed.out.image_failures) == 1
    assert re.fullmatch(r"p-[0-9a-f]{16}", done.prop.property_id)


def test_generated_csv_is_valid_with_distinct_ids(tmp_path: Path) -> None:
    path = tmp_path / "props.csv"
    write_csv(path, 300)
    rows = list(read_properties(path))
    assert len(rows) == 300 and not any(isinstance(r, BadRow) for r in rows)
    assert len({r.property_id for r in rows}) == 300  # type: ignore[union-attr]


# --- the submission speed-ups keep behaviour ---------------------------------------------------------------
@pytest.mark.parametrize("prop", [
    Property(property_id="p-1", address="1 Main St"),
    Property(property_id="p-2", address="2 Oak Ave", city="Phoenix", state="AZ", zip="85001", apn="123-45-678",
             mls_listing_key="K1", zpid="7", redfin_url="https://www.redfin.com/AZ/x/home/1"),
])
def test_fast_to_dict_equals_asdict_without_nones(prop: Property) -> None:
    expected = {k: v for k, v in dataclasses.asdict(prop).items() if v is not None}
    assert prop.to_dict() == expected and list(prop.to_dict()) == list(expected)
    assert Property.from_dict(prop.to_dict()) == prop


def _normalize_reference(text: str | None, *, words: bool = True) -> str:
    """The earlier implementation (re.sub per call), kept here as the specification."""
    from homeshots.inputs import _WORDS

    text = re.sub(r"[.']", "", (text or "").lower())
    tokens = re.sub(r"[\W_]+", " ", text).split()
    return " ".join(_WORDS.get(t, t) if words else t for t in tokens)


@pytest.mark.parametrize("text", [
    None, "", "4732 E. Camelback Road", "O'Neil  Avenue, Apartment #3", "North_Street\tSuite 5",
    "İstanbul Straße NE", "a\u2028b\u3000c\x1cd", "...'''", "Lane/Court-Place",
])
def test_normalize_matches_the_reference(text: str | None) -> None:
    for words in (True, False):
        assert _normalize(text, words=words) == _normalize_reference(text, words=words)
