"""Which properties of a run are completed or failed: Redis set + hash, O(1) per property.

The seed reloaded a whole JSON file for every mark; here a mark is one command, queued on the
caller's pipeline so it lands in the same round trip as the manifest rows of that property.
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


class StateManager:
    """Completed set and failed hash (property id -> reason JSON) of one run."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        run = keys.RunKeys(run_id)
        self.completed_key = run.completed
        self.failed_key = run.failed
        self.updated_key = run.state_updated

    def completed_among(self, property_ids: list[str]) -> set[str]:
        """Which of ``property_ids`` are completed: one SMISMEMBER for the whole batch."""
        if not property_ids:
            return set()
        flags = self.client.smismember(self.completed_key, property_ids)
        return {pid for pid, flag in zip(property_ids, flags, strict=True) if flag}

    def terminal_among(self, property_ids: list[str]) -> set[str]:
        """Which of ``property_ids`` are completed or failed (two round trips in one pipeline)."""
        if not property_ids:
            return set()
        pipe = self.client.pipeline(transaction=False)
        pipe.smismember(self.completed_key, property_ids)
        pipe.hmget(self.failed_key, property_ids)
        done, failed = pipe.execute()
        return {pid for pid, d, f in zip(property_ids, done, failed, strict=True) if d or f is not None}

    def mark_completed(self, pipe: redis.client.Pipeline, property_id: str) -> None:
        pipe.sadd(self.completed_key, property_id)
        pipe.hdel(self.failed_key, property_id)
        pipe.set(self.updated_key, _now())

    def mark_failed(self, pipe: redis.client.Pipeline, property_id: str, reason: dict[str, Any]) -> None:
        pipe.hset(self.failed_key, property_id, json.dumps(reason, sort_keys=True))
        pipe.srem(self.completed_key, property_id)
        pipe.set(self.updated_key, _now())

    def summary(self) -> ExtractionState:
        pipe = self.client.pipeline(transaction=False)
        pipe.scard(self.completed_key)
        pipe.hlen(self.failed_key)
        pipe.get(self.updated_key)
        completed, failed, updated = pipe.execute()
        return ExtractionState(int(completed), int(failed), updated)

    def failures(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for pid, reason in self.client.hscan_iter(self.failed_key, count=500):
            yield pid, json.loads(reason)

    def reset(self, pipe: redis.client.Pipeline) -> None:
        """Forget the run's state (``--no-resume``); stored images stay where they are."""
        pipe.delete(self.completed_key, self.failed_key, self.updated_key)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
