"""Statistics, one typed schema: what is counted, how it is keyed, labelled, merged and shown.

A task's ``StatsTracker`` counts flat counters; ``ExtractionResult`` is the run's view (the seed's
shape). Flat ``{"key": int}`` counters are what travels (task result -> chord callback -> Redis
hash), because they add and subtract field by field. Their keys are made and read only here
(``counter_key`` / ``parse_counter_key``); the dataclass fields below, with their labels, drive
merging, the terminal tables, the report and the Prometheus metrics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

Scope = Literal["run", "src", "fail"]
"""``run.<field>`` run totals, ``src.<source>.<field>`` per source, ``fail.<source>.<kind>`` failures."""


def stat(label: str, help: str, kind: str | None = None) -> Any:
    """A counted field: starts at 0; ``label`` heads table columns, ``help`` describes it, and an image
    counter's ``kind`` is its ``kind`` label in the ``homeshots_run_images`` metric."""
    return field(default=0, metadata={"label": label, "help": help, "kind": kind})


@dataclass(frozen=True, slots=True)
class StatField:
    """One counted field of the schema."""

    name: str
    label: str
    help: str
    kind: str | None


def counter_key(scope: Scope, name: str, source: str | None = None) -> str:
    """The flat key of a counter: ``run.images_stored``, ``src.mls.images_found``, ``fail.mls.image_timeout``."""
    return f"{scope}.{name}" if source is None else f"{scope}.{source}.{name}"


def parse_counter_key(key: str) -> tuple[str, str | None, str]:
    """``(scope, source or None, name)`` of a flat key; unknown shapes come back with scope ''."""
    scope, _, rest = key.partition(".")
    if scope == "run" and rest:
        return scope, None, rest
    if scope in ("src", "fail"):
        source, _, name = rest.partition(".")
        if source and name:
            return scope, source, name
    return "", None, key


@dataclass
class SourceStats:
    """Statistics for a single image source (the seed's fields, plus stores and failure kinds)."""

    source: str
    images_found: int = stat("found", "Images the source listed", "found")
    images_downloaded: int = stat("downloaded", "Images downloaded and standardized", "downloaded")
    images_stored: int = stat("stored", "Images stored for the first time", "stored")
    duplicates_detected: int = stat("duplicates", "Images merged into an already kept copy", "duplicate")
    copies_upgraded: int = stat("upgraded", "Kept images replaced by a larger copy from this source", "upgraded")
    images_failed: int = stat("failed", "Images that could not be downloaded or decoded", "failed")
    images_skipped: int = stat(
        "skipped", "Listed images left out: malformed, over the photo cap, pages not read", "skipped"
    )
    photos_new: int = stat("new", "Photos not seen at this source before")
    photos_changed: int = stat("changed", "Known photos that now show another image")
    photos_unchanged: int = stat("unchanged", "Known photos that did not change")
    photos_removed: int = stat("removed", "Photos the source no longer lists")
    properties_processed: int = stat("props ok", "Properties the source answered for")
    properties_failed: int = stat("props failed", "Properties the source failed for")
    failures: dict[str, int] = field(default_factory=dict)


class StatsTracker:
    """Counts what one property task did, as flat counters."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()

    def _add(self, source: str, name: str, n: int = 1, *, run: str | None = None) -> None:
        """``src.<source>.<name>`` += n, and ``run.<run>`` too when the run total counts it."""
        self.counters[counter_key("src", name, source)] += n
        if run:
            self.counters[counter_key("run", run)] += n

    def _fail(self, source: str, kind: str) -> None:
        self.counters[counter_key("fail", kind, source)] += 1

    def record_source_result(self, source: str, *, ok: bool, failure_kind: str | None = None) -> None:
        self._add(source, "properties_processed" if ok else "properties_failed")
        if failure_kind:
            self._fail(source, f"source_{failure_kind}")

    def record_images_found(self, source: str, n: int) -> None:
        self._add(source, "images_found", n, run="total_images")

    def record_unique(self, source: str, *, newly_stored: bool) -> None:
        self._add(source, "images_downloaded")
        self.counters[counter_key("run", "unique_images")] += 1
        if newly_stored:
            self._add(source, "images_stored", run="images_stored")

    def record_duplicate(self, source: str) -> None:
        self._add(source, "images_downloaded")
        self._add(source, "duplicates_detected", run="duplicate_images")

    def record_upgrade(self, source: str) -> None:
        """A larger copy from ``source`` replaced a kept photo's files."""
        self._add(source, "copies_upgraded", run="copies_upgraded")

    def record_image_failed(self, source: str, kind: str) -> None:
        self._add(source, "images_failed", run="failed_downloads")
        self._fail(source, f"image_{kind}")

    def record_items_skipped(self, source: str, kind: str, count: int) -> None:
        """Items of a source's answer left out (malformed, over the photo cap, pages not read)."""
        self._add(source, "images_skipped", count, run="images_skipped")
        self.counters[counter_key("fail", f"item_{kind}", source)] += count

    def record_delta(self, source: str, change: str) -> None:
        """One photo against the listing memory: new, changed, unchanged or removed."""
        self._add(source, f"photos_{change}", run=f"photos_{change}")

    def to_counters(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.counters.items()) if v}


@dataclass
class ExtractionResult:
    """Results of a run: the seed's shape, built from the run's merged counters."""

    run_id: str = ""
    total_properties: int = 0
    properties_completed: int = 0
    properties_failed: int = 0
    properties_skipped: int = 0
    properties_deferred: int = 0
    """Properties a nightly run left for a later night (its request budget was spent)."""
    total_images: int = stat("images found", "Images the sources listed")
    unique_images: int = stat("unique images", "Images kept (not a copy of another)")
    images_stored: int = stat("stored this run", "Images stored for the first time by this run")
    duplicate_images: int = stat("duplicates", "Images merged into an already kept copy")
    copies_upgraded: int = stat("replaced by a larger copy", "Kept images replaced by a larger copy")
    failed_downloads: int = stat("failed downloads", "Images that could not be downloaded or decoded")
    images_skipped: int = stat("images left out", "Listed images left out: malformed, over the cap, pages not read")
    photos_new: int = stat("new photos", "Photos not seen at their source before")
    photos_changed: int = stat("changed photos", "Known photos that now show another image")
    photos_unchanged: int = stat("unchanged photos", "Known photos that did not change")
    photos_removed: int = stat("removed photos", "Photos their source no longer lists")
    by_source: dict[str, SourceStats] = field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None
    bad_rows: int = 0
    night: dict[str, Any] | None = None
    """A nightly run's plan: hours, and per source its request budget, visited and deferred properties."""

    @property
    def duration_seconds(self) -> float:
        if not self.start_time or not self.end_time:
            return 0.0
        return (self.end_time - self.start_time).total_seconds()

    @property
    def blocked_sources(self) -> dict[str, int]:
        """Sources whose bot wall refused us, with how many properties: never to be read as '0 photos'."""
        return {
            name: s.failures["source_blocked"]
            for name, s in sorted(self.by_source.items())
            if s.failures.get("source_blocked")
        }

    @property
    def success_rate(self) -> float:
        if self.total_properties == 0:
            return 0.0
        return (self.properties_completed / self.total_properties) * 100

    def add_source(self, source: str) -> SourceStats:
        """The source's statistics, created empty so an enabled source shows even with nothing counted."""
        return self.by_source.setdefault(source, SourceStats(source=source))

    def apply_counters(self, counters: dict[str, int]) -> None:
        """Fill the image and per-source numbers from flat counters."""
        run_names, source_names = {f.name for f in RUN_FIELDS}, {f.name for f in SOURCE_FIELDS}
        for key, value in counters.items():
            scope, source, name = parse_counter_key(key)
            if scope == "run" and name in run_names:
                setattr(self, name, int(value))
            elif source is not None:
                stats = self.add_source(source)
                if scope == "src" and name in source_names:
                    setattr(stats, name, int(value))
                elif scope == "fail" and int(value):
                    stats.failures[name] = int(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as written to Redis and to ``metadata/runs/<id>/result.json``."""
        return {
            "run_id": self.run_id,
            "total_properties": self.total_properties,
            "properties_completed": self.properties_completed,
            "properties_failed": self.properties_failed,
            "properties_skipped": self.properties_skipped,
            "properties_deferred": self.properties_deferred,
            **{f.name: getattr(self, f.name) for f in RUN_FIELDS},
            "bad_rows": self.bad_rows,
            "night": self.night,
            "blocked_sources": self.blocked_sources,
            "by_source": {
                name: {f.name: getattr(stats, f.name) for f in SOURCE_FIELDS} | {"failures": dict(stats.failures)}
                for name, stats in sorted(self.by_source.items())
            },
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration_seconds": round(self.duration_seconds, 3),
            "success_rate": round(self.success_rate, 2),
        }


def _schema(cls: type) -> tuple[StatField, ...]:
    return tuple(
        StatField(f.name, f.metadata["label"], f.metadata["help"], f.metadata["kind"])
        for f in fields(cls)
        if f.metadata
    )


SOURCE_FIELDS: tuple[StatField, ...] = _schema(SourceStats)
"""The per-source counters, in display order."""
RUN_FIELDS: tuple[StatField, ...] = _schema(ExtractionResult)
"""The run's image counters, in display order."""
SUMMARY_ROWS: tuple[tuple[str, str], ...] = (
    ("properties", "total_properties"),
    ("completed", "properties_completed"),
    ("failed", "properties_failed"),
    ("skipped (resume)", "properties_skipped"),
    ("deferred (night budget)", "properties_deferred"),
    ("bad rows", "bad_rows"),
    *((f.label, f.name) for f in RUN_FIELDS),
    ("duration (s)", "duration_seconds"),
    ("success rate (%)", "success_rate"),
)
"""(label, key) of the run result's totals, as the terminal and the report show them."""
