"""Bounded state: a finished run's per-property records go to the store, and leave Redis.

At the end of a run its manifest, failures and completed ids are written to the store as compressed
JSON lines (``metadata/runs/<run>/{manifest,failures,completed}.jsonl.gz``), and what only a running
run needs (lane outcomes with their stats, delivery counts, leases, windows, chunk cursors) is
dropped at once. The records a
person may still ask Redis about (manifest, failures) stay for ``HOMESHOTS_RUN_RETENTION_DAYS`` and are
then dropped too; the run's meta and result stay until ``homeshots forget``. So every night adds a
few hundred bytes to Redis for the run, not a few kilobytes per property.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from homeshots.core.errors import StoreError
from homeshots.storage import Store
from managers import keys
from managers.connection import primaries
from managers.manifest_manager import ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager

ARCHIVES = ("manifest", "failures", "completed")


def archive_key(run_id: str, name: str) -> str:
    return f"metadata/runs/{run_id}/{name}.jsonl.gz"


class RunArchive:
    """Archives, compacts, expires and forgets runs."""

    def __init__(self, client: redis.Redis, store: Store) -> None:
        self.client = client
        self.store = store

    def archive(self, run_id: str) -> None:
        """Write the run's records to the store (idempotent: a rerun rewrites the same files)."""
        manifest, state = ManifestManager(self.client, run_id), StateManager(self.client, run_id)
        self._write(archive_key(run_id, "manifest"), (e.to_dict() for e in manifest.entries(resolve=False)))
        failures = ({"property_id": pid, "scope": "property"} | reason for pid, reason in state.failures())
        self._write(
            archive_key(run_id, "failures"), _chain(failures, ({"scope": "image"} | row for row in manifest.failures()))
        )
        self._write(archive_key(run_id, "completed"), ({"property_id": pid} for pid in state.completed_ids()))
        self.client.hset(RunManager(self.client, run_id).meta_key, "archived_at", _now())

    def compact(self, run_id: str, *, for_good: bool) -> None:
        """Drop what only a running run needs (delivery counts, leases, windows, chunk cursors). ``for_good``
        (a nightly run, never resumed once finished: the next night starts from the listing memory) also
        drops the per-property stats and lane outcomes and the completed set; a backfill keeps them, as
        re-running it retries its failed lanes and merges their stats exactly."""
        run = keys.RunKeys(run_id)
        doomed = [key for shard in run.shards() for key in (shard.deliveries, shard.leases)]
        doomed += self._scan(run.window_pattern())
        for part in ("next_chunk", "chained", "chunks_done", "chunk_sent", "progress_gate"):
            doomed += self._scan(run.part_pattern(part))
        if for_good:
            doomed += [key for shard in run.shards() for key in (shard.lanes, shard.completed)]
        self.client.unlink(*doomed)

    def expire(self, run_id: str) -> bool:
        """Drop the run's records from Redis once archived; True when something was dropped."""
        runs = RunManager(self.client, run_id)
        if not runs.meta().get("archived_at"):
            return False
        run = keys.RunKeys(run_id)
        doomed = [key for shard in run.shards() for key in shard.all()]
        dropped = int(self.client.unlink(*doomed))
        self.client.hset(runs.meta_key, "records", "archived")
        return bool(dropped)

    def sweep(self, retention_days: float, now: datetime | None = None) -> list[str]:
        """Expire every finished run older than the retention; returns the runs expired."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
        expired = []
        for run_id in self.client.zrange(keys.RUNS, 0, -1):
            meta = RunManager(self.client, run_id).meta()
            finished = meta.get("finished_at")
            if meta.get("records") != "archived" and finished and datetime.fromisoformat(finished) < cutoff:
                self.expire(run_id)
                expired.append(run_id)
        return expired

    def forget(self, run_id: str) -> None:
        """Remove the run from Redis and its records from the store (its images stay: they are shared)."""
        run = keys.RunKeys(run_id)
        doomed = [key for shard in run.shards() for key in shard.all()]
        doomed += self._scan(run.part_pattern("*")) + self._scan(run.window_pattern())
        self.client.unlink(*doomed)
        self.client.zrem(keys.RUNS, run_id)
        self.client.srem(keys.ACTIVE, run_id)
        for key in [archive_key(run_id, name) for name in ARCHIVES] + [f"metadata/runs/{run_id}/result.json"]:
            try:
                self.store.delete(key)
            except StoreError:
                continue

    def _scan(self, pattern: str) -> list[str]:
        """Keys matching ``pattern`` on every node (a Redis Cluster's SCAN covers one node at a time)."""
        return [key for node in primaries(self.client) for key in node.scan_iter(pattern, count=1000)]

    def rows(self, run_id: str, name: str) -> Iterator[dict[str, Any]]:
        """The archived records of a run (``manifest`` or ``failures``)."""
        data = gzip.decompress(self.store.get(archive_key(run_id, name)))
        for line in data.splitlines():
            if line.strip():
                yield json.loads(line)

    def _write(self, key: str, rows: Iterable[dict[str, Any]]) -> None:
        with tempfile.NamedTemporaryFile(suffix=".jsonl.gz", delete=False) as raw:
            path = raw.name
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out:
                for row in rows:
                    out.write(json.dumps(row, sort_keys=True).encode() + b"\n")
        try:
            self.store.put_file(key, path)
        finally:
            os.unlink(path)


def _chain(*parts: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for part in parts:
        yield from part


def _now() -> str:
    return datetime.now(UTC).isoformat()
