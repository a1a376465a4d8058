"""Recording lanes: a property is terminal once its last lane lands, in any order, and nothing counts twice."""

from __future__ import annotations

import itertools
import time

import pytest

from managers import keys
from managers.connection import connect
from managers.lane_recorder import LaneRecord, LaneRecorder
from managers.manifest_manager import ManifestManager
from managers.run_manager import RunManager
from managers.source_limiter import SourceLimiter
from managers.state_manager import LaneOutcome, StateManager

LANES = ["mls", "zillow", "redfin"]
BLOCKED = {"source": "zillow", "kind": "blocked", "message": "bot wall", "retryable": False}


def _record(pid: str, lane: str, *, failed: bool = False, images: int = 2) -> LaneRecord:
    rows = [{"property_id": pid, "source": lane, "sha256": f"{lane}{i}"} for i in range(images)]
    counters = {f"src.{lane}.images_found": images, "run.total_images": images}
    outcome = LaneOutcome("failed", BLOCKED | {"source": lane}) if failed else LaneOutcome("completed")
    return LaneRecord(pid, lane, LANES, outcome, rows, [], counters, memory='{"v":"2026-11-30","p":[]}')


@pytest.mark.parametrize("order", list(itertools.permutations(LANES)), ids="-".join)
def test_the_last_lane_makes_the_property_terminal_in_any_order(redis_server, order) -> None:
    client = connect(redis_server.url)
    recorder, state = LaneRecorder(client, "r"), StateManager(client, "r")
    statuses = [recorder.record(_record("p1", lane, failed=lane == "zillow")) for lane in order]
    assert statuses[:2] == [None, None] and statuses[2] == "failed", "terminal only with the last lane"
    assert state.terminal_among(["p1"]) == {"p1"} and state.completed_among(["p1"]) == set()
    assert dict(state.failures()) == {"p1": BLOCKED}, "the failing lane's reason"
    rows = ManifestManager(client, "r").for_properties(["p1"], LANES)["p1"]
    assert {lane: len(r) for lane, (r, _) in rows.items()} == dict.fromkeys(LANES, 2)
    assert set(client.hkeys(keys.listing_memory("p1"))) == set(LANES), "each source's memory is kept"
    assert RunManager(client, "r").counters()["run.total_images"] == 6


def test_a_rerun_replaces_the_lane_and_merges_only_the_difference(redis_server) -> None:
    client = connect(redis_server.url)
    recorder, runs = LaneRecorder(client, "r"), RunManager(client, "r")
    for lane in LANES:
        recorder.record(_record("p1", lane, failed=lane == "zillow"))
    recorder.record(_record("p1", "zillow", failed=True))  # a redelivered copy: nothing changes
    assert runs.counters() == {"run.total_images": 6, **{f"src.{lane}.images_found": 2 for lane in LANES}}
    # Resumed later: Zillow now succeeds with three photos; the property becomes completed.
    assert recorder.record(_record("p1", "zillow", images=3)) == "completed"
    assert runs.counters()["run.total_images"] == 7 and runs.counters()["src.zillow.images_found"] == 3
    state = StateManager(client, "r")
    assert state.completed_among(["p1"]) == {"p1"} and dict(state.failures()) == {}
    rows = ManifestManager(client, "r").for_properties(["p1"], LANES)["p1"]["zillow"][0]
    assert len(rows) == 3, "the lane's rows are replaced, never appended"


def test_deliveries_count_killed_starts_only(redis_server) -> None:
    client = connect(redis_server.url)
    recorder = LaneRecorder(client, "r")
    assert [recorder.start("p1", "mls", "w@h", time.time()) for _ in range(3)] == [1, 2, 3]
    recorder.unstart("p1", "mls")  # one of them gave its slot back for tokens
    assert recorder.start("p1", "mls", "w@h", time.time()) == 3
    lease = StateManager(client, "r").leases(["p1"], "mls")["p1"]
    assert lease["worker"] == "w@h" and lease["state"] == "running"
    recorder.record(_record("p1", "mls"))
    assert StateManager(client, "r").leases(["p1"], "mls") == {}, "recording ends the lease"
    assert recorder.start("p1", "mls", "w@h", time.time()) == -1, "a completed lane is not started again"
    # A new submission of the run starts counting afresh.
    recorder.start("p2", "mls", "w@h", time.time())
    RunManager(client, "r").start_submission(input_file="f", sources=["mls"], reset=False)
    assert recorder.start("p2", "mls", "w@h", time.time()) == 1


def test_a_run_spreads_over_its_shards(redis_server) -> None:
    client = connect(redis_server.url)
    recorder = LaneRecorder(client, "big")
    for i in range(400):
        recorder.record(LaneRecord(f"p{i}", "mls", ["mls"], LaneOutcome("completed"), [], [], {"n": 1}))
    shards = {keys.shard_of(f"p{i}") for i in range(400)}
    assert len(shards) > keys.SHARDS * 0.7, "400 properties land in most of the 256 shards"
    assert StateManager(client, "big").summary().completed == 400
    assert RunManager(client, "big").counters() == {"n": 400}


def test_reservations_hand_out_future_tokens_up_to_the_horizon(redis_server) -> None:
    limiter = SourceLimiter(connect(redis_server.url), "zillow", rate=2.0, burst=2)
    first = [limiter.reserve(1, horizon=3.0) for _ in range(8)]
    assert [r.granted for r in first] == [True] * 8
    delays = [r.delay for r in first]
    assert delays[:2] == [0.0, 0.0], "the burst is due at once"
    assert all(b > a for a, b in itertools.pairwise(delays[1:])), "each later reservation is due later"
    assert delays[-1] == pytest.approx(3.0, abs=0.1), "six tokens of debt at 2/s: due in 3 s"
    refused = limiter.reserve(1, horizon=3.0)
    assert not refused.granted and 0 < refused.delay <= 0.6, "past the horizon: try again shortly"
    assert limiter.reserve(3, horizon=10.0).granted, "a cost above the burst can still be reserved"


def test_a_stale_failed_attempt_never_replaces_a_completed_lane(redis_server) -> None:
    client = connect(redis_server.url)
    recorder, runs = LaneRecorder(client, "r"), RunManager(client, "r")
    for lane in LANES:
        recorder.record(_record("p1", lane))
    before = runs.counters()
    # The copy on a host that was cut off ran out of time and records late, after the redelivered copy.
    assert recorder.record(_record("p1", "zillow", failed=True, images=0)) is None
    state = StateManager(client, "r")
    assert state.completed_among(["p1"]) == {"p1"} and dict(state.failures()) == {}
    assert runs.counters() == before
    rows = ManifestManager(client, "r").for_properties(["p1"], LANES)["p1"]["zillow"][0]
    assert len(rows) == 2, "the completed attempt's rows stand"
