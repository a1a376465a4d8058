"""Durable snapshots of Redis in the store, and the restore that rebuilds an empty Redis from them.

Each chunk callback writes what its chunk changed (its properties' state, and per lane their outcome,
manifest rows, failures and stats, plus the index records they point at) as one JSON-lines file
``metadata/snapshots/<seq>-...jsonl``; ``homeshots snapshot`` writes everything (``...-full.jsonl``).
A restore applies the last full snapshot and every later file in order, so a lost Redis costs at most
the chunks in flight. Counters are not restored as such: each shard's are summed again from the
counters each lane recorded, so they agree with the restored records exactly.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

import redis

from homeshots.storage import Store
from managers import keys
from managers.connection import primaries
from managers.deduplicator import ImageDeduplicator, ImageRecord
from managers.manifest_manager import ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager

PREFIX = "metadata/snapshots/"


class SnapshotManager:
    """Writes and restores snapshots of runs and of the hash index."""

    def __init__(self, client: redis.Redis, store: Store) -> None:
        self.client = client
        self.store = store

    # --- writing ----------------------------------------------------------------------------------
    def write_chunk(self, run_id: str, property_ids: list[str]) -> str:
        """What one chunk changed: O(chunk), whatever the size of the run or corpus."""
        lines = [self._run_line(run_id), *self._property_lines(run_id, property_ids)]
        clusters = {
            row.get("duplicate_of") or row["sha256"]
            for line in lines[1:]
            for lane in line["lanes"].values()
            for row in lane["rows"]
        }
        lines += self._image_lines(sorted(clusters))
        return self._put(f"{run_id}-chunk", lines)

    def write_run(self, run_id: str) -> str:
        return self._put(f"{run_id}-run", [self._run_line(run_id)])

    def write_full(self) -> str:
        """Everything: every run with all its properties, and the whole hash index."""

        def lines() -> Iterator[dict[str, Any]]:
            for run_id in self.client.zrange(keys.RUNS, 0, -1):
                yield self._run_line(run_id)
                ids: set[str] = set()
                for shard in keys.RunKeys(run_id).shards():
                    ids |= set(self.client.sscan_iter(shard.completed, count=1000))
                    ids |= set(self.client.hkeys(shard.failed))
                    ids |= {keys.split_lane_field(f)[0] for f in self.client.hkeys(shard.lanes)}
                ordered = sorted(ids)
                for start in range(0, len(ordered), 1000):
                    yield from self._property_lines(run_id, ordered[start : start + 1000])
            records = [k for node in primaries(self.client) for k in node.scan_iter(keys.IMAGE_PATTERN, count=1000)]
            shas = [keys.sha_of_image_key(k) for k in records]
            for start in range(0, len(shas), 1000):
                yield from self._image_lines(shas[start : start + 1000])

        return self._put("full", lines())

    def _put(self, label: str, lines: Iterable[dict[str, Any]]) -> str:
        seq = int(self.client.incr(keys.SNAPSHOT_SEQ))
        key = f"{PREFIX}{seq:012d}-{label}.jsonl"
        with tempfile.NamedTemporaryFile("w+b", suffix=".jsonl", delete=False) as fh:
            for line in lines:
                fh.write(json.dumps(line, sort_keys=True).encode() + b"\n")
            path = fh.name
        try:
            self.store.put_file(key, path)
        finally:
            os.unlink(path)
        return key

    def _run_line(self, run_id: str) -> dict[str, Any]:
        runs = RunManager(self.client, run_id)
        return {
            "type": "run",
            "run_id": run_id,
            "meta": runs.meta(),
            "result": runs.final_result(),
            "bad_rows": runs.bad_rows(),
        }

    def _property_lines(self, run_id: str, property_ids: list[str]) -> list[dict[str, Any]]:
        if not property_ids:
            return []
        lanes = RunManager(self.client, run_id).sources()
        state = StateManager(self.client, run_id)
        terminal = self._terminal(run_id, property_ids)
        rows = ManifestManager(self.client, run_id).for_properties(property_ids, lanes)
        outcomes = {lane: state.lane_outcomes(property_ids, lane) for lane in lanes}
        lines = []
        for pid in property_ids:
            recorded = {}
            for lane in lanes:
                outcome = outcomes[lane].get(pid)
                if outcome is None:
                    continue
                lane_rows, lane_failures = rows.get(pid, {}).get(lane, ([], []))
                recorded[lane] = {"outcome": outcome.stored(), "rows": lane_rows, "failures": lane_failures}
            completed, failed = terminal.get(pid, (False, None))
            lines.append(
                {
                    "type": "property",
                    "run_id": run_id,
                    "property_id": pid,
                    "completed": completed,
                    "failed": failed,
                    "lanes": recorded,
                }
            )
        return lines

    def _terminal(self, run_id: str, property_ids: list[str]) -> dict[str, tuple[bool, dict[str, Any] | None]]:
        run = keys.RunKeys(run_id)
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            pipe.smismember(run.shard(shard).completed, ids)
            pipe.hmget(run.shard(shard).failed, ids)
        replies = pipe.execute() if groups else []
        out = {}
        for i, ids in enumerate(groups.values()):
            for pid, done, fail in zip(ids, replies[2 * i], replies[2 * i + 1], strict=True):
                out[pid] = (bool(done), json.loads(fail) if fail else None)
        return out

    def _image_lines(self, shas: list[str]) -> list[dict[str, Any]]:
        pipe = self.client.pipeline(transaction=False)
        for sha in shas:
            pipe.hgetall(keys.image(sha))
        return [{"type": "image", "record": record} for record in pipe.execute() if record]

    # --- restoring --------------------------------------------------------------------------------
    def files_to_restore(self) -> list[str]:
        """The last full snapshot and every file written after it, in order."""
        files = sorted(k for k in self.store.keys(PREFIX) if k.endswith(".jsonl"))
        fulls = [i for i, k in enumerate(files) if k.endswith("-full.jsonl")]
        return files[fulls[-1] :] if fulls else files

    def restore(self, dedup: ImageDeduplicator) -> dict[str, int]:
        """Rebuild runs, state, manifest and index from the snapshots into this (empty) Redis."""
        counts = {"files": 0, "runs": 0, "properties": 0, "images": 0}
        last_seq = 0
        runs: set[str] = set()
        for key in self.files_to_restore():
            counts["files"] += 1
            last_seq = max(last_seq, int(key.removeprefix(PREFIX).split("-", 1)[0]))
            pipe = self.client.pipeline(transaction=False)
            records = []
            for raw in self.store.get(key).splitlines():
                line = json.loads(raw)
                if line["type"] == "run":
                    counts["runs"] += 1
                    runs.add(line["run_id"])
                    self._apply_run(pipe, line)
                elif line["type"] == "property":
                    counts["properties"] += 1
                    self._apply_property(pipe, line)
                elif line["type"] == "image":
                    records.append(ImageRecord.from_redis(line["record"]))
            pipe.execute()
            counts["images"] += dedup.bulk_load(records)
        for run_id in runs:
            self._recount(run_id)
        self.client.set(keys.SNAPSHOT_SEQ, last_seq)
        return counts

    def _recount(self, run_id: str) -> None:
        """The run's totals, counted again from the restored lanes and state."""
        RunManager(self.client, run_id).recount()

    def _apply_run(self, pipe: redis.client.Pipeline, line: dict[str, Any]) -> None:
        run_id, meta = line["run_id"], dict(line["meta"])
        if meta.get("status") != "finished":
            meta["status"] = "interrupted"  # its queue is gone: resume with `homeshots backfill ... --run-id`
        runs = RunManager(self.client, run_id)
        pipe.hset(runs.meta_key, mapping=meta)
        if line.get("result"):
            pipe.set(runs.result_key, json.dumps(line["result"], sort_keys=True))
        pipe.delete(runs.bad_rows_key)
        for row in line.get("bad_rows") or []:
            pipe.rpush(runs.bad_rows_key, json.dumps(row, sort_keys=True))
        pipe.zadd(keys.RUNS, {run_id: float(self.client.time()[0])}, nx=True)

    def _apply_property(self, pipe: redis.client.Pipeline, line: dict[str, Any]) -> None:
        run_id, pid = line["run_id"], line["property_id"]
        state = StateManager(self.client, run_id)
        if line["completed"]:
            state.mark_completed(pipe, pid)
        elif line["failed"]:
            state.mark_failed(pipe, pid, line["failed"])
        shard = keys.RunKeys(run_id).of(pid)
        for lane, recorded in line.get("lanes", {}).items():
            field = keys.lane_field(pid, lane)
            pipe.hset(shard.lanes, field, recorded["outcome"])
            for key, value in ((shard.manifest, recorded["rows"]), (shard.image_failures, recorded["failures"])):
                if value:
                    pipe.hset(key, field, json.dumps(value, sort_keys=True))
                else:
                    pipe.hdel(key, field)
