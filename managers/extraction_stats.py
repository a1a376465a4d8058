"""Statistics: a task's StatsTracker counts flat counters; ExtractionResult is the run's view.

Flat ``{"name": int}`` counters are what travels (task result -> chord callback -> Redis hash),
because they add and subtract field by field; the nested seed shape is built only for display.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SOURCE_FIELDS = ("properties_processed", "properties_failed", "images_found", "images_downloaded",
                 "images_failed", "duplicates_detected", "images_stored", "copies_upgraded")
RUN_FIELDS = ("total_images", "unique_images", "duplicate_images", "failed_downloads", "images_stored",
              "copies_upgraded")


@dataclass
class SourceStats:
    """Statistics for a single image source (the seed's fields, plus stores and failure kinds)."""

    source: str
    properties_processed: int = 0
    properties_failed: int = 0
    images_found: int = 0
    images_downloaded: int = 0
    images_failed: int = 0
    duplicates_detected: int = 0
    images_stored: int = 0
    copies_upgraded: int = 0
    failures: dict[str, int] = field(default_factory=dict)


class StatsTracker:
    """Counts what one property task did, as flat counters."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()

    def _add(self, source: str, name: str, n: int = 1) -> None:
        self.counters[f"src.{source}.{name}"] += n

    def record_source_result(self, source: str, *, ok: bool, failure_kind: str | None = None) -> None:
        self._add(source, "properties_processed" if ok else "properties_failed")
        if failure_kind:
            self.counters[f"fail.{source}.source_{failure_kind}"] += 1

    def record_images_found(self, source: str, n: int) -> None:
        self._add(source, "images_found", n)
        self.counters["run.total_images"] += n

    def record_unique(self, source: str, *, newly_stored: bool) -> None:
        self._add(source, "images_downloaded")
        self.counters["run.unique_images"] += 1
        if newly_stored:
            self._add(source, "images_stored")
            self.counters["run.images_stored"] += 1

    def record_duplicate(self, source: str) -> None:
        self._add(source, "images_downloaded")
        self._add(source, "duplicates_detected")
        self.counters["run.duplicate_images"] += 1

    def record_upgrade(self, source: str) -> None:
        """A larger copy from ``source`` replaced a kept photo's files."""
        self._add(source, "copies_upgraded")
        self.counters["run.copies_upgraded"] += 1

    def record_image_failed(self, source: str, kind: str) -> None:
        self._add(source, "images_failed")
        self.counters["run.failed_downloads"] += 1
        self.counters[f"fail.{source}.image_{kind}"] += 1

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
    total_images: int = 0
    unique_images: int = 0
    duplicate_images: int = 0
    failed_downloads: int = 0
    images_stored: int = 0
    copies_upgraded: int = 0
    by_source: dict[str, SourceStats] = field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None
    bad_rows: int = 0

    @property
    def duration_seconds(self) -> float:
        if not self.start_time or not self.end_time:
            return 0.0
        return (self.end_time - self.start_time).total_seconds()

    @property
    def blocked_sources(self) -> dict[str, int]:
        """Sources whose bot wall refused us, with how many properties: never to be read as '0 photos'."""
        return {name: s.failures["source_blocked"] for name, s in sorted(self.by_source.items())
                if s.failures.get("source_blocked")}

    @property
    def success_rate(self) -> float:
        if self.total_properties == 0:
            return 0.0
        return (self.properties_completed / self.total_properties) * 100

    def apply_counters(self, counters: dict[str, int]) -> None:
        """Fill the image and per-source numbers from flat counters."""
        for name, value in counters.items():
            scope, _, rest = name.partition(".")
            if scope == "run" and rest in RUN_FIELDS:
                setattr(self, rest, int(value))
            elif scope in ("src", "fail"):
                source, _, metric = rest.partition(".")
                stats = self.by_source.setdefault(source, SourceStats(source=source))
                if scope == "src" and metric in SOURCE_FIELDS:
                    setattr(stats, metric, int(value))
                elif scope == "fail" and int(value):
                    stats.failures[metric] = int(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as written to Redis and to ``metadata/runs/<id>/result.json``."""
        return {
            "run_id": self.run_id,
            "total_properties": self.total_properties,
            "properties_completed": self.properties_completed,
            "properties_failed": self.properties_failed,
            "properties_skipped": self.properties_skipped,
            "total_images": self.total_images,
            "unique_images": self.unique_images,
            "duplicate_images": self.duplicate_images,
            "failed_downloads": self.failed_downloads,
            "images_stored": self.images_stored,
            "copies_upgraded": self.copies_upgraded,
            "bad_rows": self.bad_rows,
            "blocked_sources": self.blocked_sources,
            "by_source": {
                name: {f: getattr(stats, f) for f in SOURCE_FIELDS} | {"failures": dict(stats.failures)}
                for name, stats in sorted(self.by_source.items())
            },
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration_seconds": round(self.duration_seconds, 3),
            "success_rate": round(self.success_rate, 2),
        }
