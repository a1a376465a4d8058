"""The benchmarks' pure helpers: the seed-style state, Redis command stats, /proc parsing, fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.memory import parse_status_kb
from benchmarks.state_o1 import SeedJsonState, SeedState, commandstats_delta, make_fixture, property_id
from benchmarks.submission import write_csv
from homeshots.core.inputs import BadRow, read_properties


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
    after = {
        "cmdstat_get": {"calls": 13, "usec": 160},
        "cmdstat_info": {"calls": 3, "usec": 150},
        "cmdstat_sadd": {"calls": 2, "usec": 8},
    }
    assert commandstats_delta(before, after) == (5, 68.0)


def test_parse_status_kb() -> None:
    status = "Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\n"
    assert parse_status_kb(status, "VmHWM") == 123456
    assert parse_status_kb(status, "VmRSS") == 65432
    assert parse_status_kb(status, "VmSwap") is None


def test_state_fixture_is_a_realistic_outcome() -> None:
    done, failed = make_fixture(property_id("t", 0), 0), make_fixture(property_id("t", 9), 9)
    assert [out.source for out, _ in done.lanes] == ["mls", "zillow", "redfin"], "three lanes per property"
    assert all(len(out.entries) == 1 and not out.failures and out.reason is None for out, _ in done.lanes)
    assert [out.reason is not None for out, _ in failed.lanes] == [False, False, True], "the redfin lane fails"
    assert sum(len(out.failures) for out, _ in failed.lanes) == 1
    assert all(counters["run.total_images"] == 1 for _, counters in done.lanes)
    assert re.fullmatch(r"p-[0-9a-f]{16}", done.prop.property_id)


def test_generated_csv_is_valid_with_distinct_ids(tmp_path: Path) -> None:
    path = tmp_path / "props.csv"
    write_csv(path, 300)
    rows = list(read_properties(path))
    assert len(rows) == 300 and not any(isinstance(r, BadRow) for r in rows)
    assert len({r.property_id for r in rows}) == 300  # type: ignore[union-attr]
