"""Recording one property: state, manifest, stats and listing memory in one Redis transaction.

One round trip per property, whatever its number of sources and photos: the seed reloaded whole JSON
files here; this is the O(1) replacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from homeshots.core.models import Property
from homeshots.pipeline.source_pass import SourceResult
from managers import keys
from managers.listing_memory import ListingMemoryManager
from managers.manifest_manager import ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager


@dataclass
class PropertyOutcome:
    """What a task returns to the chord: small, JSON, no image data."""

    property_id: str
    status: str
    counters: dict[str, int]
    reason: dict[str, Any] | None = None

    def to_result(self) -> dict[str, Any]:
        return {
            "property_id": self.property_id,
            "status": self.status,
            "counters": self.counters,
            "reason": self.reason,
        }


def record_property(
    client: redis.Redis, run_id: str, prop: Property, results: list[SourceResult], outcome: PropertyOutcome
) -> None:
    """State, manifest rows and failures, stats and every visited source's listing memory, atomically."""
    entries = [e for r in results for e in r.entries]
    failures = [f.to_dict(prop.property_id) for r in results for f in r.failures]
    pipe = client.pipeline(transaction=True)
    ManifestManager(client, run_id).set_property(pipe, prop.property_id, entries, failures)
    state = StateManager(client, run_id)
    if outcome.reason:
        state.mark_failed(pipe, prop.property_id, outcome.reason)
    else:
        state.mark_completed(pipe, prop.property_id)
    RunManager(client, run_id).record_property_stats(pipe, prop.property_id, outcome.counters)
    memory = ListingMemoryManager(client)
    for result in results:
        if result.memory is not None:
            memory.put(pipe, prop.property_id, result.source, result.memory)
            if result.source == "mls" and result.memory.listing_key:
                pipe.sadd(keys.MLS_TRACKED, result.memory.listing_key)
                pipe.delete(keys.mls_changed(result.memory.listing_key))
    pipe.execute()
