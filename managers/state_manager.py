"""Which properties of a run are completed or failed, and which lanes of each have recorded.

The seed reloaded a whole JSON file for every mark; here a property's state is a set member and a
hash field in its shard (``keys.RunShardKeys``), written by the lane recorder's script in the same
atomic step as the lane's manifest rows. Batches of ids are read with one command per shard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from managers import keys


@dataclass(frozen=True)
class ExtractionState:
    """A summary of a run's state (the seed's name; the sets themselves stay in Redis)."""

    completed: int
    failed: int
    last_updated: str | None


@dataclass(frozen=True, slots=True)
class LaneOutcome:
    """How one lane (source) of one property ended: ``completed`` or ``failed`` with a reason."""

    status: str
    reason: dict[str, Any] | None = None
    counters: dict[str, int] | None = None
    """What the lane merged into the run's counters (as recorded; None when not read)."""

    def encode(self) -> str:
        """``status`` or ``failed<TAB>reason JSON``: the recorder's script finds the reason without JSON."""
        return self.status if self.reason is None else f"{self.status}\t{json.dumps(self.reason, sort_keys=True)}"

    def stored(self) -> str:
        """As the lanes hash keeps it (snapshots restore it as it was)."""
        return f"{self.encode()}\n{encode_counters(self.counters or {})}"

    @classmethod
    def decode(cls, text: str) -> LaneOutcome:
        """From the lanes hash: the encoded outcome, a newline, the counters JSON."""
        head, _, counters = text.partition("\n")
        status, _, reason = head.partition("\t")
        return cls(status, json.loads(reason) if reason else None, json.loads(counters) if counters else None)


COMPLETED, FAILED = "properties.completed", "properties.failed"
AT = "at:"
"""Prefix of the totals fields ``at:<lane>``: when a property last recorded an outcome in that lane."""


def merge_stripes(stripes: list[dict[str, str]]) -> tuple[dict[str, int], dict[str, float]]:
    """(counters summed, lane -> latest ``at:`` time) of a run's totals stripes."""
    counters: dict[str, int] = {}
    latest: dict[str, float] = {}
    for stripe in stripes:
        for name, value in stripe.items():
            if name.startswith(AT):
                lane = name.removeprefix(AT)
                latest[lane] = max(latest.get(lane, 0.0), float(value))
            else:
                counters[name] = counters.get(name, 0) + int(value)
    return counters, latest


"""Fields of the run's totals hash that count properties (the rest are the run's counters)."""


def encode_counters(counters: dict[str, int]) -> str:
    """The canonical JSON of a lane's counters (zeros left out), as the lanes hash keeps it."""
    return json.dumps({k: v for k, v in counters.items() if v}, sort_keys=True, separators=(",", ":"))


class StateManager:
    """Completed set, failed hash (property -> reason JSON) and lane outcomes of one run, by shard."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.keys = keys.RunKeys(run_id)

    def completed_among(self, property_ids: list[str]) -> set[str]:
        """Which of ``property_ids`` are completed: one SMISMEMBER per shard, one round trip."""
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            pipe.smismember(self.keys.shard(shard).completed, ids)
        flags = pipe.execute() if groups else []
        return {
            pid
            for ids, found in zip(groups.values(), flags, strict=True)
            for pid, f in zip(ids, found, strict=True)
            if f
        }

    def terminal_among(self, property_ids: list[str]) -> set[str]:
        """Which of ``property_ids`` are completed or failed."""
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            pipe.smismember(self.keys.shard(shard).completed, ids)
            pipe.hmget(self.keys.shard(shard).failed, ids)
        replies = pipe.execute() if groups else []
        out = set()
        for i, ids in enumerate(groups.values()):
            done, failed = replies[2 * i], replies[2 * i + 1]
            out |= {pid for pid, d, f in zip(ids, done, failed, strict=True) if d or f is not None}
        return out

    def lane_outcomes(self, property_ids: list[str], lane: str) -> dict[str, LaneOutcome]:
        """The recorded outcome of ``lane`` for each of ``property_ids`` that has one."""
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            pipe.hmget(self.keys.shard(shard).lanes, [keys.lane_field(pid, lane) for pid in ids])
        replies = pipe.execute() if groups else []
        return {
            pid: LaneOutcome.decode(raw)
            for ids, values in zip(groups.values(), replies, strict=True)
            for pid, raw in zip(ids, values, strict=True)
            if raw is not None
        }

    def leases(self, property_ids: list[str], lane: str) -> dict[str, dict[str, Any]]:
        """Who holds the unrecorded tasks of ``lane``: worker, since when, state (received, running, resent)."""
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            pipe.hmget(self.keys.shard(shard).leases, [keys.lane_field(pid, lane) for pid in ids])
        replies = pipe.execute() if groups else []
        return {
            pid: json.loads(raw)
            for ids, values in zip(groups.values(), replies, strict=True)
            for pid, raw in zip(ids, values, strict=True)
            if raw
        }

    def set_lease(self, property_id: str, lane: str, lease: dict[str, Any]) -> None:
        field = keys.lane_field(property_id, lane)
        self.client.hset(self.keys.of(property_id).leases, field, json.dumps(lease, sort_keys=True))

    def lane_completed(self, property_id: str, lane: str) -> bool:
        raw = self.client.hget(self.keys.of(property_id).lanes, keys.lane_field(property_id, lane))
        return raw is not None and raw.startswith("completed\n")

    def mark_completed(self, pipe: redis.client.Pipeline, property_id: str) -> None:
        """Used by a restore; a run's tasks mark properties through the lane recorder."""
        shard = self.keys.of(property_id)
        pipe.sadd(shard.completed, property_id)
        pipe.hdel(shard.failed, property_id)

    def mark_failed(self, pipe: redis.client.Pipeline, property_id: str, reason: dict[str, Any]) -> None:
        shard = self.keys.of(property_id)
        pipe.hset(shard.failed, property_id, json.dumps(reason, sort_keys=True))
        pipe.srem(shard.completed, property_id)

    def totals(self) -> tuple[dict[str, int], dict[str, float]]:
        """The run's running totals: (counters, lane -> when it last recorded), its stripes in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for stripe in self.keys.totals_stripes():
            pipe.hgetall(stripe)
        return merge_stripes(pipe.execute())

    def summary(self) -> ExtractionState:
        """The run's completed and failed counts from its totals (one round trip: what polls read)."""
        counters, latest = self.totals()
        stamp = max(latest.values(), default=None)
        updated = datetime.fromtimestamp(stamp, UTC).isoformat() if stamp is not None else None
        return ExtractionState(counters.get(COMPLETED, 0), counters.get(FAILED, 0), updated)

    def exact_summary(self) -> ExtractionState:
        """Counts over every shard (one pipelined round trip per node): what the final recount uses."""
        pipe = self.client.pipeline(transaction=False)
        for shard in self.keys.shards():
            pipe.scard(shard.completed)
            pipe.hlen(shard.failed)
        replies = pipe.execute()
        completed = sum(int(x) for x in replies[0::2])
        failed = sum(int(x) for x in replies[1::2])
        latest = max(self.totals()[1].values(), default=None)
        updated = datetime.fromtimestamp(latest, UTC).isoformat() if latest is not None else None
        return ExtractionState(completed, failed, updated)

    def failures(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for shard in self.keys.shards():
            for pid, reason in self.client.hscan_iter(shard.failed, count=500):
                yield pid, json.loads(reason)

    def completed_ids(self) -> Iterator[str]:
        for shard in self.keys.shards():
            yield from self.client.sscan_iter(shard.completed, count=1000)

    def clear_deliveries(self) -> None:
        """A new submission starts counting deliveries afresh: counts belong to one attempt of one run."""
        self.client.unlink(*(s.deliveries for s in self.keys.shards()), *(s.leases for s in self.keys.shards()))

    def reset(self) -> None:
        """Forget the run's records (``--no-resume``); stored images stay where they are."""
        self.client.unlink(*(key for shard in self.keys.shards() for key in shard.all()), *self.keys.totals_stripes())


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
