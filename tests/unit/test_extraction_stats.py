"""StatsTracker counters and the ExtractionResult built from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from managers.extraction_stats import ExtractionResult, SourceStats, StatsTracker


def one_property() -> StatsTracker:
    """A property whose source listed 5 images: 2 new, 1 already stored, 1 duplicate, 1 timeout."""
    t = StatsTracker()
    t.record_source_result("mls", ok=True)
    t.record_images_found("mls", 5)
    t.record_unique("mls", newly_stored=True)
    t.record_unique("mls", newly_stored=True)
    t.record_unique("mls", newly_stored=False)
    t.record_duplicate("mls")
    t.record_image_failed("mls", "timeout")
    return t


def test_tracker_counts_one_property() -> None:
    assert one_property().to_counters() == {
        "fail.mls.image_timeout": 1,
        "run.duplicate_images": 1,
        "run.failed_downloads": 1,
        "run.images_stored": 2,
        "run.total_images": 5,
        "run.unique_images": 3,
        "src.mls.duplicates_detected": 1,
        "src.mls.images_downloaded": 4,
        "src.mls.images_failed": 1,
        "src.mls.images_found": 5,
        "src.mls.images_stored": 2,
        "src.mls.properties_processed": 1,
    }


def test_failed_source_counts_failure_kind() -> None:
    t = StatsTracker()
    t.record_source_result("mls", ok=False, failure_kind="blocked")
    assert t.to_counters() == {"src.mls.properties_failed": 1, "fail.mls.source_blocked": 1}


def test_apply_counters_builds_source_stats_and_failures() -> None:
    result = ExtractionResult()
    result.apply_counters(one_property().to_counters() | {"fail.mls.image_http_404": 0, "bogus.key": 7})
    assert (
        result.total_images,
        result.unique_images,
        result.duplicate_images,
        result.failed_downloads,
        result.images_stored,
    ) == (5, 3, 1, 1, 2)
    assert result.by_source == {
        "mls": SourceStats(
            source="mls",
            properties_processed=1,
            images_found=5,
            images_downloaded=4,
            images_failed=1,
            duplicates_detected=1,
            images_stored=2,
            failures={"image_timeout": 1},
        )
    }


def test_to_dict_has_seed_fields_rate_and_duration() -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    result = ExtractionResult(
        run_id="r1",
        total_properties=3,
        properties_completed=2,
        properties_failed=1,
        start_time=start,
        end_time=start + timedelta(seconds=90.5),
    )
    result.apply_counters(one_property().to_counters())
    d = result.to_dict()
    seed = {
        "total_properties",
        "properties_completed",
        "properties_failed",
        "properties_skipped",
        "total_images",
        "unique_images",
        "duplicate_images",
        "failed_downloads",
        "by_source",
        "start_time",
        "end_time",
        "duration_seconds",
        "success_rate",
    }
    assert seed <= d.keys()
    assert d["success_rate"] == 66.67
    assert d["duration_seconds"] == 90.5
    assert d["start_time"] == "2024-05-01T12:00:00+00:00"
    assert d["by_source"]["mls"]["images_found"] == 5
    assert d["by_source"]["mls"]["failures"] == {"image_timeout": 1}


def test_empty_run_has_zero_rate_and_duration() -> None:
    d = ExtractionResult().to_dict()
    assert (d["success_rate"], d["duration_seconds"], d["start_time"], d["end_time"]) == (0.0, 0.0, None, None)
