"""Recording one lane of one property: its rows, failures, stats and listing memory in one atomic step.

One script on the property's shard whatever the number of photos (``managers.lane_recorder``): the
seed reloaded whole JSON files here; this is the O(1) replacement. The MLS bookkeeping around it
(the listing keys we follow, the replication's change notes) lives in other slots, so it goes just
before (follow first: following one listing too many is harmless) and just after (a change note is
consumed only once the visit that used it is recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from homeshots.core.models import Property
from homeshots.pipeline.source_pass import SourceResult
from managers import keys
from managers.lane_recorder import LaneRecord, LaneRecorder
from managers.state_manager import LaneOutcome


@dataclass
class LaneResult:
    """What a lane task returns to its chord: small, JSON, no image data."""

    property_id: str
    lane: str
    status: str
    """The lane's: ``completed``, ``failed`` or ``skipped`` (already completed)."""
    counters: dict[str, int]
    reason: dict[str, Any] | None = None
    property_status: str | None = None
    """The property's, once this lane was the last of its lanes to record."""

    def to_result(self) -> dict[str, Any]:
        return {
            "property_id": self.property_id,
            "lane": self.lane,
            "status": self.status,
            "counters": self.counters,
            "reason": self.reason,
            "property_status": self.property_status,
        }


def record_lane(
    client: redis.Redis,
    run_id: str,
    prop: Property,
    lanes: list[str],
    result: SourceResult,
    counters: dict[str, int],
) -> LaneResult:
    """Write what one source pass collected; the property becomes terminal when its last lane lands."""
    memory = result.memory
    tracked = result.source == "mls" and memory is not None and memory.listing_key
    if tracked:
        client.sadd(keys.mls_tracked(memory.listing_key), memory.listing_key)  # type: ignore[union-attr]
    outcome = LaneOutcome("failed" if result.reason else "completed", result.reason)
    status = LaneRecorder(client, run_id).record(
        LaneRecord(
            property_id=prop.property_id,
            lane=result.source,
            lanes=lanes,
            outcome=outcome,
            rows=[e.to_dict() for e in result.entries],
            failures=[f.to_dict(prop.property_id) for f in result.failures],
            counters=counters,
            memory=memory.to_json() if memory is not None else None,
        )
    )
    if tracked:
        client.delete(keys.mls_changed(memory.listing_key))  # type: ignore[union-attr]
    return LaneResult(prop.property_id, result.source, outcome.status, counters, result.reason, status)


def record_lane_failure(
    client: redis.Redis, run_id: str, property_id: str, lane: str, lanes: list[str], reason: dict[str, Any]
) -> LaneResult:
    """A lane that ends without a source pass (timeout, poison, lost, a bug): failed, nothing else changes."""
    status = LaneRecorder(client, run_id).record(
        LaneRecord(property_id, lane, lanes, LaneOutcome("failed", reason), [], [], {})
    )
    return LaneResult(property_id, lane, "failed", {}, reason, status)
