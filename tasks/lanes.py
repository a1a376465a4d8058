"""How each lane (source) walks a run: its chunk size, which properties a chunk holds, what a visit costs.

Pure planning, no I/O. A lane's chunk holds about ``lane_chunk_seconds`` of its source's requests at the
source's rate: the MLS (5 requests/s) takes 300 properties of a window at a time, Zillow (0.5/s) 15. Each
lane keeps ``windows_in_flight`` chunks queued, so the broker holds a few minutes of work per source,
whatever the run's size, and every task of a chunk can reserve its tokens within the reservation horizon.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from homeshots.core.models import Property
from homeshots.core.settings import Settings
from homeshots.sources.redfin import property_id_from_url
from managers.listing_memory import ListingMemory
from managers.run_manager import LaneChunks


def request_cost(source: str, prop: Property, memory: ListingMemory | None, replicated: bool) -> int:
    """API requests a visit of ``source`` costs for ``prop`` (photo downloads go to CDNs, not budgeted)."""
    if source == "mls":
        return 0 if replicated and memory is not None and memory.listing_key else 1
    if source == "zillow":
        return 1 if prop.zpid else 2  # an address search redirects to the home page
    if source == "redfin":
        return 1 if property_id_from_url(prop.redfin_url) else 2
    return 3 if prop.apn else 4  # maricopa: (search,) parcel, sketches


TYPICAL = Property(property_id="typical", address="1 Main St")
"""A row with no source ids: what a visit costs at most (an address search), for sizing chunks."""


def chunk_size(settings: Settings, source: str) -> int:
    """Properties per chunk of ``source``'s lane: ``lane_chunk_seconds`` of its requests, at most a window."""
    per_property = max(1, request_cost(source, TYPICAL, None, False))
    size = int(settings.policy(source).rate * settings.lane_chunk_seconds / per_property)
    return max(1, min(settings.window_size, size))


def plan_lanes(
    settings: Settings, sources: list[str], windows: int, largest_window: int | None = None
) -> dict[str, LaneChunks]:
    """Each lane's chunking for a submission of ``windows`` windows, the largest holding ``largest_window``
    properties (default: a full window)."""
    fullest = max(1, min(settings.window_size, largest_window or settings.window_size))
    plans = {}
    for source in sources:
        size = min(chunk_size(settings, source), fullest)
        per_window = math.ceil(fullest / size)
        plans[source] = LaneChunks(chunk_size=size, per_window=per_window, chunks=windows * per_window)
    return plans


def chunk_slice(plan: LaneChunks, chunk: int) -> tuple[int, int, int]:
    """(window, start, end) of the properties chunk ``chunk`` covers in its window."""
    window, part = divmod(chunk, plan.per_window)
    return window, part * plan.chunk_size, (part + 1) * plan.chunk_size


def chunk_members(
    window: list[dict[str, Any]], plan: LaneChunks, chunk: int, lane: str, run_sources: list[str]
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """(property without its source list, every lane it is visited with) for each property of the chunk
    that ``lane`` visits (a nightly window names each property's sources; a backfill visits all)."""
    _, start, end = chunk_slice(plan, chunk)
    for item in window[start:end]:
        prop = dict(item)
        lanes = prop.pop("sources", run_sources)
        if lane in lanes:
            yield prop, list(lanes)
