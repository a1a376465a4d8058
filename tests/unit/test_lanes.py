"""How each source's lane walks a run: chunk sizes follow the source's rate, chunks cover every property once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeshots.core.settings import SOURCES, Settings
from tasks.lanes import chunk_members, chunk_size, chunk_slice, plan_lanes


def test_a_chunk_holds_a_minute_of_the_sources_requests() -> None:
    settings = Settings(lane_chunk_seconds=60)
    assert chunk_size(settings, "mls") == 300, "5 requests/s, one per property"
    assert chunk_size(settings, "zillow") == 15, "0.5 requests/s, two per property (an address search)"
    assert chunk_size(settings, "redfin") == 30
    assert chunk_size(settings, "maricopa") == 30, "2 requests/s, four per property"
    slow = Settings(zillow_rate=0.01, lane_chunk_seconds=60)
    assert chunk_size(slow, "zillow") == 1, "never empty"
    assert chunk_size(Settings(window_size=50), "mls") == 50, "never more than a window"


@given(
    window_size=st.integers(1, 40),
    windows=st.integers(1, 5),
    chunk_seconds=st.floats(0.5, 200),
    last=st.integers(1, 40),
)
def test_every_property_is_in_exactly_one_chunk_of_each_lane(window_size, windows, chunk_seconds, last) -> None:
    settings = Settings(window_size=window_size, lane_chunk_seconds=chunk_seconds)
    sizes = [window_size] * (windows - 1) + [min(last, window_size)]
    stored = [[{"property_id": f"w{w}p{i}"} for i in range(n)] for w, n in enumerate(sizes)]
    for lane, plan in plan_lanes(settings, list(SOURCES), windows).items():
        seen = []
        for chunk in range(plan.chunks):
            window, _, _ = chunk_slice(plan, chunk)
            members = list(chunk_members(stored[window], plan, chunk, lane, list(SOURCES)))
            assert len(members) <= plan.chunk_size
            seen += [prop["property_id"] for prop, _ in members]
        assert seen == [p["property_id"] for w in stored for p in w], lane


def test_a_property_is_only_in_the_lanes_it_is_visited_with() -> None:
    plan = plan_lanes(Settings(window_size=10), ["mls", "zillow"], 1)
    window = [
        {"property_id": "a"},
        {"property_id": "b", "sources": ["mls"]},
        {"property_id": "c", "sources": ["zillow"]},
    ]
    mls = list(chunk_members(window, plan["mls"], 0, "mls", ["mls", "zillow"]))
    zillow = list(chunk_members(window, plan["zillow"], 0, "zillow", ["mls", "zillow"]))
    assert [(p["property_id"], lanes) for p, lanes in mls] == [("a", ["mls", "zillow"]), ("b", ["mls"])]
    assert [(p["property_id"], lanes) for p, lanes in zillow] == [("a", ["mls", "zillow"]), ("c", ["zillow"])]
    assert all("sources" not in p for p, _ in mls + zillow), "the lane list travels apart from the property"


@pytest.mark.parametrize("rate", [0.5, 5.0, 50.0])
def test_reservations_reach_as_far_as_the_chunks_in_flight(rate: float) -> None:
    settings = Settings(mls_rate=rate, windows_in_flight=2, lane_chunk_seconds=60)
    queued = settings.windows_in_flight * chunk_size(settings, "mls")
    assert queued / rate <= settings.reservation_horizon, "every queued task can reserve its token at once"


def test_a_small_run_has_no_empty_chunks() -> None:
    plans = plan_lanes(Settings(), ["mls", "zillow"], windows=1, largest_window=12)
    assert plans["mls"].chunks == 1 and plans["mls"].chunk_size == 12
    assert plans["zillow"].chunks == 1, "15 per chunk: the 12 properties fit in one"
