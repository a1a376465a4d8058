"""Every Redis key homeshots uses, built here and nowhere else, so a reader sees the whole data model.

Tests and tools use these functions too, never key strings of their own.

```
hs:runs                                   sorted set: run ids by submission time
hs:active                                 set: runs submitted and not finished (what the reconciler watches)
hs:run:{<run>}:<part>                     one run's coordination (RunKeys): meta, result, lanes' chunk cursors
hs:run:<run>:{w:<run>:<i>}:win:<gen>      the properties of one window (spread over the cluster by window)
hs:run:<run>:{t:<run>:<i>}:totals         a share of the run's running totals (16 stripes, summed on read)
hs:run:<run>:{p<xx>}:<part>               a run's records of the properties of shard xx (RunShardKeys):
                                          state, manifest, per-lane outcomes, stats, delivery counts
hs:lm:{p<xx>}:<property>                  listing memory: source -> what was last seen (ListingMemoryManager)
hs:pimg:{p<xx>}:<property>                the kept images a property's photos are (the looser property rule)
hs:img:{i<xx>}:<sha256>                   one kept image (the corpus-wide hash index), sharded by its sha256
hs:raw:{i<xx>}:<sha256 of the bytes>      raw digest -> the kept image those bytes became (skip decoding)
hs:garbage:{i<xx>}                        store keys a larger copy replaced, waiting to be deleted (per shard)
hs:ilog:{l<n>}                            segment n of the claim log: the kept images' pHash+sha256 in order
hs:ilog:{l<n>}:packed                     the segment's pHashes in one string, 16 hex each (what replicas read)
hs:mls:sync                               the RESO replication point
hs:mls:tracked:{p<xx>}                    the RESO listing keys we follow (sharded by listing key)
hs:mls:changed:{<listing key>}            a tracked listing the last replication found changed (its RESO JSON)
hs:snapshot_seq                           counter naming snapshot files in write order
hs:bucket:{src:<s>}, hs:pause:{src:<s>}   the cluster-wide token bucket of a source, and its 429 pause
hs:bucket_waits                           seconds of tokens reserved ahead, per source (metrics)
hs:metrics:latency:<source>               a source's request latency histogram (RequestRecorder, for metrics)
hs:workers                                worker -> when it last said it was alive (a lost one's tasks are re-sent)
hs:reconciler                             the lock of the one worker that reconciles runs now
```

``{...}`` is the hash tag: on a Redis Cluster every transaction and script touches keys of one tag only. A
property's records (of every run), its listing memory and its property images share the tag of its shard
(``{p<xx>}``, one of ``SHARDS``), so recording a property is one atomic script on one node while a run
spreads over all nodes. Kept images are sharded the same way by their sha256 (``{i<xx>}``), and the
claim log by segment (``{l<n>}``): no node holds the whole index.
```
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "hs"
SHARDS = 256
"""Property shards. Fixed for good: a property's keys are found by its shard, so changing it moves every key."""
TOTAL_STRIPES = 16
"""Stripes of a run's running totals (``RunKeys.totals_stripe``), each its own slot."""
SEPARATOR = "|"
"""Between a property id and a lane in hash fields (property ids never hold it: see ``core.inputs``)."""
RUN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
"""What a run id may be: it is part of key names (never braces, which would change the hash tag)."""

RUNS = f"{PREFIX}:runs"
"""Sorted set of run ids by submission time."""

ACTIVE = f"{PREFIX}:active"
"""Set of runs submitted and not finished: what the reconciler looks at."""

RECONCILER = f"{PREFIX}:reconciler"
"""A lock (SET NX PX): the one worker that reconciles runs now."""


WORKERS = f"{PREFIX}:workers"
"""Sorted set: worker (Celery node name) -> when it last said it was alive. A silent one's tasks are re-sent."""


def shard_of(text: str) -> int:
    """The shard of a property id (or of a listing key): stable across processes and versions."""
    return zlib.crc32(text.encode()) % SHARDS


def shard_tag(shard: int) -> str:
    return f"{{p{shard:02x}}}"


def property_tag(property_id: str) -> str:
    """The hash tag of everything about one property."""
    return shard_tag(shard_of(property_id))


def lane_field(property_id: str, lane: str) -> str:
    """A hash field for one property in one lane (source)."""
    return f"{property_id}{SEPARATOR}{lane}"


def split_lane_field(field: str) -> tuple[str, str]:
    property_id, _, lane = field.rpartition(SEPARATOR)
    return property_id, lane


def by_shard(property_ids: Iterable[str]) -> dict[int, list[str]]:
    """Property ids grouped by shard (in their order): one command per shard instead of one per id."""
    groups: dict[int, list[str]] = {}
    for pid in property_ids:
        groups.setdefault(shard_of(pid), []).append(pid)
    return groups


SNAPSHOT_SEQ = f"{PREFIX}:snapshot_seq"
"""Counter naming snapshot files, so a restore applies them in the order they were written."""

BUCKET_WAITS = f"{PREFIX}:bucket_waits"
"""Hash source -> seconds workers spent waiting for a token (for metrics)."""

IMAGE_SHARDS = 256
"""Shards of the kept-image records (by the first two hex digits of the sha256). Fixed for good."""

IMAGE_PATTERN = f"{PREFIX}:img:*"
"""SCAN pattern of every kept-image record (run it on every node of a cluster)."""

LOG_SEGMENT = 4096
"""Kept images per claim-log segment; a full one never changes again, and each loads in one GET."""


def image_tag(sha256: str) -> str:
    """The hash tag of a kept image: its record, the raw digests that became it and its garbage share a slot."""
    return f"{{i{sha256[:2]}}}"


def image(sha256: str) -> str:
    """The corpus-wide record of one kept image (a hash index entry)."""
    return f"{PREFIX}:img:{image_tag(sha256)}:{sha256}"


def sha_of_image_key(key: str) -> str:
    """The sha256 a kept-image record key is for (inverse of ``image``)."""
    return key.rpartition(":")[2]


def raw_digest(raw_sha256: str) -> str:
    """The kept image (its sha256) that a downloaded body with this digest became."""
    return f"{PREFIX}:raw:{image_tag(raw_sha256)}:{raw_sha256}"


def garbage(shard: int) -> str:
    """Set of store keys a larger copy replaced (of kept images in ``shard``), deleted by a later callback."""
    return f"{PREFIX}:garbage:{{i{shard:02x}}}"


def garbage_of(sha256: str) -> str:
    """The garbage set in the slot of the kept image ``sha256`` (its upgrade script writes both)."""
    return garbage(int(sha256[:2], 16))


def log_segment(segment: int) -> str:
    """List: kept images ``<phash hex><sha256>`` in claim order, ``LOG_SEGMENT`` of them per segment."""
    return f"{PREFIX}:ilog:{{l{segment}}}"


def log_packed(segment: int) -> str:
    """String: the segment's pHashes (16 hex each) in log order; its length says how full the segment is."""
    return f"{PREFIX}:ilog:{{l{segment}}}:packed"


LEGACY_INDEX = f"{PREFIX}:{{idx}}:"
"""Prefix of the index as it was before the claim log (one slot: ``img:``, ``band:``, ``raw:`` keys);
``homeshots migrate-index`` moves it."""

LEGACY_GARBAGE = f"{PREFIX}:garbage"
"""The one garbage set of that layout."""


def property_images(property_key: str) -> str:
    """Set of the kept images a property's photos are (JSON traits): its own copies merge more loosely."""
    return f"{PREFIX}:pimg:{property_tag(property_key)}:{property_key}"


def listing_memory(property_id: str) -> str:
    """Hash source -> what that source last listed for the property."""
    return f"{PREFIX}:lm:{property_tag(property_id)}:{property_id}"


MLS_SYNC = f"{PREFIX}:mls:sync"
"""The RESO replication point: the latest ModificationTimestamp a completed sync has seen."""


def mls_tracked(listing_key: str) -> str:
    """The shard of the set of RESO listing keys we follow that ``listing_key`` belongs in."""
    return f"{PREFIX}:mls:tracked:{property_tag(listing_key)}"


def mls_changed(listing_key: str) -> str:
    """A tracked listing a replication found changed: its RESO JSON, until a visit consumes it."""
    return f"{PREFIX}:mls:changed:{{{listing_key}}}"


def bucket(source: str) -> str:
    """Token bucket (tokens, ts) of one source, shared by the cluster."""
    return f"{PREFIX}:bucket:{{src:{source}}}"


def pause(source: str) -> str:
    """Exists (with a TTL) while the whole cluster backs off ``source`` after a 429 (same slot as its bucket)."""
    return f"{PREFIX}:pause:{{src:{source}}}"


def request_latency(source: str) -> str:
    """Hash of one source's request latency histogram: ``le:<bound>`` cumulative buckets, ``sum``, ``count``,
    ``code:<class>`` responses by status class and ``errors`` (``managers.request_metrics``)."""
    return f"{PREFIX}:metrics:latency:{source}"


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The coordination keys of one run, all under the tag ``{<run>}``; its records are in ``shard`` keys."""

    run_id: str

    def _part(self, part: str) -> str:
        return f"{PREFIX}:run:{{{self.run_id}}}:{part}"

    def shard(self, shard: int) -> RunShardKeys:
        return RunShardKeys(self.run_id, shard)

    def of(self, property_id: str) -> RunShardKeys:
        """The keys holding the run's records of ``property_id``."""
        return RunShardKeys(self.run_id, shard_of(property_id))

    def shards(self) -> list[RunShardKeys]:
        return [RunShardKeys(self.run_id, shard) for shard in range(SHARDS)]

    # --- the run ---------------------------------------------------------------------------------
    @property
    def meta(self) -> str:
        """Hash: status, generation, sources, lanes, input, sizes, timestamps."""
        return self._part("meta")

    @property
    def result(self) -> str:
        """String: the final ExtractionResult as JSON."""
        return self._part("result")

    @property
    def progress(self) -> str:
        """List: a JSON sample of the run's totals per finished chunk (the report's plots)."""
        return self._part("progress")

    @property
    def bad_rows(self) -> str:
        """List: rows of the properties file skipped with ``--skip-bad-rows``."""
        return self._part("bad_rows")

    # --- windows and the lanes' chunks of one submission (generation) -----------------------------
    def window(self, generation: int, index: int) -> str:
        """String: the JSON list of properties of one window (kept so any lane, or a re-send, can read it)."""
        return f"{PREFIX}:run:{self.run_id}:{{w:{self.run_id}:{index}}}:win:{generation}"

    def next_chunk(self, generation: int, lane: str) -> str:
        """Counter: the next chunk of ``lane`` to be claimed for sending."""
        return self._part(f"next_chunk:{generation}:{lane}")

    def chained(self, generation: int, lane: str) -> str:
        """Hash: chunk index -> the chunk its callback sent next (claimed once)."""
        return self._part(f"chained:{generation}:{lane}")

    def chunks_done(self, generation: int, lane: str) -> str:
        """Set: chunks of ``lane`` whose callback has run."""
        return self._part(f"chunks_done:{generation}:{lane}")

    def chunk_sent(self, generation: int, lane: str) -> str:
        """Hash: chunk index -> when it was (last) sent, for the reconciler."""
        return self._part(f"chunk_sent:{generation}:{lane}")

    def part_pattern(self, part: str) -> str:
        """A SCAN pattern for the run's coordination keys whose part starts with ``part``."""
        return f"{PREFIX}:run:{{{_glob_escape(self.run_id)}}}:{part}{'' if part.endswith('*') else '*'}"

    def window_pattern(self) -> str:
        """A SCAN pattern for the run's windows (of every generation): run it on every node."""
        run = _glob_escape(self.run_id)
        return f"{PREFIX}:run:{run}:{{w:{run}:*"

    def totals_stripe(self, stripe: int) -> str:
        """Hash: a share of the run's counters, completed/failed property counts and ``at:<lane>`` (when a
        property last recorded in that lane), added to by the lane records of its properties (one round
        trip each); the run's totals are the sum of the ``TOTAL_STRIPES`` shares (one pipelined read),
        recounted exactly from the shards when the run is finalized. Striped so no node takes every write."""
        return f"{PREFIX}:run:{self.run_id}:{{t:{self.run_id}:{stripe:x}}}:totals"

    def totals_of(self, property_id: str) -> str:
        """The totals stripe a property's lane records add to."""
        return self.totals_stripe(shard_of(property_id) % TOTAL_STRIPES)

    def totals_stripes(self) -> list[str]:
        return [self.totals_stripe(stripe) for stripe in range(TOTAL_STRIPES)]

    @property
    def progress_gate(self) -> str:
        """Exists for a few seconds after a progress sample was taken (one sample at a time)."""
        return self._part("progress_gate")


@dataclass(frozen=True, slots=True)
class RunShardKeys:
    """One run's records of the properties of one shard (tag ``{p<xx>}``): one property's are one slot."""

    run_id: str
    shard: int

    def _part(self, part: str) -> str:
        return f"{PREFIX}:run:{self.run_id}:{shard_tag(self.shard)}:{part}"

    # --- state (StateManager) ----------------------------------------------------------------------
    @property
    def completed(self) -> str:
        """Set: completed property ids."""
        return self._part("completed")

    @property
    def failed(self) -> str:
        """Hash: failed property id -> reason JSON."""
        return self._part("failed")

    @property
    def lanes(self) -> str:
        """Hash: ``<property>|<lane>`` -> that lane's outcome and the counters it merged; all lanes in: terminal."""
        return self._part("lanes")

    @property
    def deliveries(self) -> str:
        """Hash: ``<property>|<lane>`` -> tasks started without recording an outcome (poison detection)."""
        return self._part("deliveries")

    @property
    def leases(self) -> str:
        """Hash: ``<property>|<lane>`` -> the worker running (or holding) that task, and since when."""
        return self._part("leases")

    # --- manifest (ManifestManager) -------------------------------------------------------------------
    @property
    def manifest(self) -> str:
        """Hash: ``<property>|<lane>`` -> that lane's manifest rows (JSON list)."""
        return self._part("manifest")

    @property
    def image_failures(self) -> str:
        """Hash: ``<property>|<lane>`` -> its failed images (JSON list), the manifest of failures."""
        return self._part("image_failures")

    def all(self) -> list[str]:
        return [
            self.completed, self.failed, self.lanes, self.deliveries, self.leases, self.manifest, self.image_failures,
        ]  # fmt: skip


def _glob_escape(text: str) -> str:
    """``text`` matched literally inside a SCAN pattern (a run id may hold ``*``, ``?`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
