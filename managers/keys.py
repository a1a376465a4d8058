"""Every Redis key homeshots uses, built here and nowhere else, so a reader sees the whole data model.

Tests and tools use these functions too, never key strings of their own.

```
hs:runs                               sorted set: run ids by submission time
hs:run:{<run>}:<part>                 one run (RunKeys): meta, state, manifest, stats, windows
hs:{idx}:img:<sha256>                 one kept image (the corpus-wide hash index)
hs:{idx}:band:<band>:<value>          pHash band buckets of the index (multi-index hashing)
hs:{idx}:raw:<sha256 of the bytes>    raw digest -> the kept image those bytes became (skip decoding)
hs:lm:{<property>}                    listing memory: source -> what was last seen (ListingMemoryManager)
hs:pimg:{<property>}                  the kept images a property's photos are (the looser property rule)
hs:mls:sync, hs:mls:tracked           the RESO replication point, and the listing keys we follow
hs:mls:changed:{<listing key>}        a tracked listing the last replication found changed (its RESO JSON)
hs:garbage                            store keys a larger copy replaced, waiting to be deleted
hs:snapshot_seq                       counter naming snapshot files in write order
hs:bucket:<source>, hs:pause:<source> the cluster-wide token bucket of a source, and its 429 pause
hs:bucket_waits                       seconds workers waited for each source's tokens
hs:metrics:latency:<source>           a source's request latency histogram (RequestRecorder, for metrics)
```
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "hs"

RUNS = f"{PREFIX}:runs"
"""Sorted set of run ids by submission time."""

GARBAGE = f"{PREFIX}:garbage"
"""Set of store keys replaced by a larger copy, deleted by the pipeline or a later window callback."""

SNAPSHOT_SEQ = f"{PREFIX}:snapshot_seq"
"""Counter naming snapshot files, so a restore applies them in the order they were written."""

BUCKET_WAITS = f"{PREFIX}:bucket_waits"
"""Hash source -> seconds workers spent waiting for a token (for metrics)."""

_INDEX = f"{PREFIX}:{{idx}}"
"""Hash tag of the index: a claim script reads and writes its records and bands in one slot."""

IMAGE_PREFIX = f"{_INDEX}:img:"
"""Prefix of the kept-image records; ``IMAGE_PREFIX + '*'`` scans the index."""

PHASH_BANDS = f"{_INDEX}:band:"
"""Prefix of the sets ``<prefix><band>:<value as 8 hex>`` of ``<phash hex><sha256>`` members."""


def image(sha256: str) -> str:
    """The corpus-wide record of one kept image (a hash index entry)."""
    return IMAGE_PREFIX + sha256


def phash_band(band: int, value: int) -> str:
    """The bucket of index members whose pHash has ``value`` in band ``band``."""
    return f"{PHASH_BANDS}{band}:{value:08x}"


def raw_digest(raw_sha256: str) -> str:
    """The kept image (its sha256) that a downloaded body with this digest became."""
    return f"{_INDEX}:raw:{raw_sha256}"


def property_images(property_key: str) -> str:
    """Set of the kept images a property's photos are (JSON traits): its own copies merge more loosely."""
    return f"{PREFIX}:pimg:{{{property_key}}}"


def listing_memory(property_id: str) -> str:
    """Hash source -> what that source last listed for the property."""
    return f"{PREFIX}:lm:{{{property_id}}}"


MLS_SYNC = f"{PREFIX}:mls:sync"
"""The RESO replication point: the latest ModificationTimestamp a completed sync has seen."""
MLS_TRACKED = f"{PREFIX}:mls:tracked"
"""Set of the RESO listing keys of our properties: only their changes are kept from a sync."""


def mls_changed(listing_key: str) -> str:
    """A tracked listing a replication found changed: its RESO JSON, until a visit consumes it."""
    return f"{PREFIX}:mls:changed:{{{listing_key}}}"


def bucket(source: str) -> str:
    """Token bucket (tokens, ts) of one source, shared by the cluster."""
    return f"{PREFIX}:bucket:{source}"


def pause(source: str) -> str:
    """Exists (with a TTL) while the whole cluster backs off ``source`` after a 429."""
    return f"{PREFIX}:pause:{source}"


def request_latency(source: str) -> str:
    """Hash of one source's request latency histogram: ``le:<bound>`` cumulative buckets, ``sum``, ``count``,
    ``code:<class>`` responses by status class and ``errors`` (``managers.request_metrics``)."""
    return f"{PREFIX}:metrics:latency:{source}"


@dataclass(frozen=True, slots=True)
class RunKeys:
    """The keys of one run. ``{run}`` is a hash tag: a run's transactions stay in one slot."""

    run_id: str

    def _part(self, part: str) -> str:
        return f"{PREFIX}:run:{{{self.run_id}}}:{part}"

    # --- the run ---------------------------------------------------------------------------------
    @property
    def meta(self) -> str:
        """Hash: status, generation, sources, input, sizes, timestamps."""
        return self._part("meta")

    @property
    def result(self) -> str:
        """String: the final ExtractionResult as JSON."""
        return self._part("result")

    @property
    def progress(self) -> str:
        """List: a JSON sample of the run's totals per finished window (the report's plots)."""
        return self._part("progress")

    @property
    def bad_rows(self) -> str:
        """List: rows of the properties file skipped with ``--skip-bad-rows``."""
        return self._part("bad_rows")

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
    def state_updated(self) -> str:
        """String: when the state last changed."""
        return self._part("state_updated")

    @property
    def deliveries(self) -> str:
        """Hash: property id -> tasks started without recording an outcome (poison detection)."""
        return self._part("deliveries")

    # --- manifest (ManifestManager) -------------------------------------------------------------------
    @property
    def manifest(self) -> str:
        """Hash: property id -> its manifest rows (JSON list)."""
        return self._part("manifest")

    @property
    def image_failures(self) -> str:
        """Hash: property id -> its failed images (JSON list), the manifest of failures."""
        return self._part("image_failures")

    # --- stats (RunManager) ----------------------------------------------------------------------
    @property
    def counters(self) -> str:
        """Hash: the run's merged flat counters."""
        return self._part("counters")

    @property
    def merged(self) -> str:
        """Hash: property id -> the counters last merged into ``counters`` for it."""
        return self._part("merged")

    @property
    def pstats(self) -> str:
        """Hash: property id -> the counters of its latest attempt (for a callback without results)."""
        return self._part("pstats")

    # --- windows of one submission (generation) ------------------------------------------------------
    def window(self, generation: int, index: int) -> str:
        """String: the JSON list of properties of one chord window (kept so a window can be re-sent)."""
        return self._part(f"win:{generation}:{index}")

    def window_pattern(self, generation: int | None = None) -> str:
        """A SCAN pattern for the run's windows (of one generation, or all)."""
        return self.part_pattern(f"win:{'*' if generation is None else f'{generation}:*'}")

    def part_pattern(self, part: str) -> str:
        """A SCAN pattern for the run's keys whose part starts with ``part`` (``*`` for every key of the run)."""
        return f"{PREFIX}:run:{{{_glob_escape(self.run_id)}}}:{part}{'' if part.endswith('*') else '*'}"

    def next_window(self, generation: int) -> str:
        """Counter: the next window index to be claimed for sending."""
        return self._part(f"next_window:{generation}")

    def chained(self, generation: int) -> str:
        """Hash: window index -> the window its callback sent next (claimed once)."""
        return self._part(f"chained:{generation}")

    def windows_done(self, generation: int) -> str:
        """Set: windows whose callback has merged and chained."""
        return self._part(f"windows_done:{generation}")


def _glob_escape(text: str) -> str:
    """``text`` matched literally inside a SCAN pattern (a run id may hold ``*``, ``?`` or ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
