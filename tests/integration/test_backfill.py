"""A backfill over real processes: CLI -> Redis broker -> Celery workers -> sandbox -> store."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv


def _processed_files(store: Path) -> list[Path]:
    return sorted((store / "processed").rglob("*.png"))


def test_backfill_stores_standardized_images_once_with_manifest(tmp_path, cluster_factory):
    listings, photos = make_catalog(4)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        proc = cluster.cli("backfill", str(props), "--run-id", "r1")
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
        assert "Traceback" not in proc.stderr, proc.stderr

    result = status_json(cluster, "r1")["result"]
    assert result["total_properties"] == 4
    assert result["properties_completed"] == 4
    assert result["total_images"] == 14  # 4 x 3 + one exact copy + one near copy
    assert result["duplicate_images"] == 2
    assert result["unique_images"] == 12
    assert result["by_source"]["mls"]["images_stored"] == 12

    files = _processed_files(cluster.store_dir)
    assert len(files) == 12, "each distinct photo stored exactly once"
    assert len(list((cluster.store_dir / "raw").rglob("*.jpg"))) == 12
    for path in files:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert max(im.size) <= 1024
            assert not im.getexif() and "icc_profile" not in im.info and "exif" not in im.info
    # The photo with EXIF orientation 6 (stored 1200x1600 sideways) comes out upright landscape.
    rows = manifest_rows(cluster, "r1")
    rotated = next(r for r in rows if r["source_url"].endswith("/T1_1.jpg"))
    assert (rotated["width"], rotated["height"]) == (1024, 768)

    assert len(rows) == 14
    assert {r["source"] for r in rows} == {"mls"}
    # Whichever copy a worker registered first is kept; the other row points at it.
    for first, second in (("/T1_0.jpg", "/T2_same.jpg"), ("/T1_1.jpg", "/T3_near.jpg")):
        a = next(r for r in rows if r["source_url"].endswith(first))
        b = next(r for r in rows if r["source_url"].endswith(second))
        kept, copy = (a, b) if a["duplicate_of"] is None else (b, a)
        assert kept["duplicate_of"] is None
        assert copy["duplicate_of"] == kept["sha256"]
        assert copy["processed_key"] == kept["processed_key"]
        assert copy["property_id"] != kept["property_id"]
    exact = [r for r in rows if r["source_url"].endswith(("/T1_0.jpg", "/T2_same.jpg"))]
    assert exact[0]["sha256"] == exact[1]["sha256"], "an exact copy has the same pixel hash"
    for row in rows:
        assert (cluster.store_dir / row["processed_key"]).is_file()
        assert set(row) == {
            "property_id",
            "address",
            "source",
            "source_url",
            "sha256",
            "phash",
            "raw_key",
            "processed_key",
            "width",
            "height",
            "duplicate_of",
            "change",
        }
        assert row["change"] == "new", "a first collection finds every photo new"
    assert (cluster.store_dir / "metadata" / "runs" / "r1" / "result.json").is_file()


def test_resume_skips_completed_and_no_resume_stores_nothing_twice(tmp_path, cluster_factory):
    listings, photos = make_catalog(5)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        first = cluster.cli("backfill", str(props))
        assert first.returncode == 0, first.stderr + cluster.worker_log()
        run_id = first.stdout.split("run ", 1)[1].split(":", 1)[0].strip()
        stored = sorted(p.name for p in _processed_files(cluster.store_dir))
        requests_before = len(sandbox.request_log)

        again = cluster.cli("backfill", str(props))  # same file -> same run id -> resume
        assert again.returncode == 0, again.stderr
        assert "5 already completed, 0 to process" in again.stdout
        assert len(sandbox.request_log) == requests_before, "resume must not touch the source"
        resumed = status_json(cluster, run_id)["result"]
        assert resumed["properties_skipped"] == 5 and resumed["properties_completed"] == 5
        assert resumed["total_images"] == 17, "stats of the first submission are kept, not recounted"

        fresh = cluster.cli("backfill", str(props), "--no-resume")
        assert fresh.returncode == 0, fresh.stderr
        assert len(sandbox.request_log) > requests_before
    redone = status_json(cluster, run_id)["result"]
    assert redone["properties_completed"] == 5 and redone["properties_skipped"] == 0
    assert redone["total_images"] == 17 and redone["images_stored"] == 15
    assert sorted(p.name for p in _processed_files(cluster.store_dir)) == stored, "nothing stored twice"


def test_failed_property_is_reported_then_retried_on_resume(tmp_path, cluster_factory):
    listings, photos = make_catalog(3)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env(), concurrency=1)
        # HOMESHOTS_MLS_MAX_RETRIES=1: two 503s exhaust one property's attempts.
        sandbox.fail("/reso/odata/Property", 503, times=2)
        first = cluster.cli("backfill", str(props), "--run-id", "flaky")
        assert first.returncode == 0, first.stderr + cluster.worker_log()
        report = status_json(cluster, "flaky")
        assert report["result"]["properties_failed"] == 1
        assert report["result"]["properties_completed"] == 2
        [(pid, reason)] = report["failed_properties"].items()
        assert reason["source"] == "mls" and reason["kind"] == "server_error"
        assert "503" in reason["message"] and pid in reason["message"]

        second = cluster.cli("backfill", str(props), "--run-id", "flaky")
        assert second.returncode == 0, second.stderr
    final = status_json(cluster, "flaky")["result"]
    assert final["properties_failed"] == 0 and final["properties_completed"] == 3
    assert final["total_images"] == 11, "the retried property is counted once"
    assert final["by_source"]["mls"]["properties_failed"] == 0


def test_loopback_image_urls_are_refused_unless_allowed(tmp_path, cluster_factory):
    listings, photos = make_catalog(1)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        env = sandbox.env() | {"HOMESHOTS_ALLOW_PRIVATE_HOSTS": ""}
        cluster = cluster_factory(env)
        proc = cluster.cli("backfill", str(props), "--run-id", "ssrf")
        assert proc.returncode == 0, proc.stderr + cluster.worker_log()
        assert not any(path.startswith("/photos/") for _, path in sandbox.request_log)
    result = status_json(cluster, "ssrf")["result"]
    assert result["failed_downloads"] == 3 and result["unique_images"] == 0
    assert result["by_source"]["mls"]["failures"] == {"image_unsafe_url": 3}
    failures = cluster.cli("manifest", "ssrf", "--failures")
    rows = [json.loads(line) for line in failures.stdout.splitlines()]
    assert len(rows) == 3 and all(r["kind"] == "unsafe_url" and r["retryable"] is False for r in rows)
    assert all("HOMESHOTS_ALLOW_PRIVATE_HOSTS" in r["message"] for r in rows)
    assert not _processed_files(cluster.store_dir)


def test_bad_input_names_file_row_and_field_and_submits_nothing(tmp_path, cluster_factory):
    listings, photos = make_catalog(2)
    bad = write_csv(
        tmp_path / "bad.csv",
        listings,
        [{"address": "", "city": "Phoenix", "state": "AZ", "zip": "85001", "mls_listing_key": "T9"}],
    )
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        proc = cluster.cli("backfill", str(bad), "--run-id", "bad")
        assert proc.returncode == 2
        message = " ".join(proc.stderr.split())
        assert "bad.csv" in message and "row 4" in message and "address" in message
        assert not any(path.startswith("/reso") for _, path in sandbox.request_log)

        skipped = cluster.cli("backfill", str(bad), "--run-id", "bad", "--skip-bad-rows")
        assert skipped.returncode == 0, skipped.stderr
    report = status_json(cluster, "bad")
    assert report["result"]["bad_rows"] == 1 and report["result"]["properties_completed"] == 2
    assert report["bad_rows"][0]["row"] == 4 and report["bad_rows"][0]["field"] == "address"


def test_image_server_errors_fail_the_property_until_a_resume_succeeds(tmp_path, cluster_factory):
    listings, photos = make_catalog(2)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        sandbox.fail("/photos/T1_2.jpg", 503, times=3)  # the first try and both retries
        first = cluster.cli("backfill", str(props), "--run-id", "img503")
        assert first.returncode == 0, first.stderr + cluster.worker_log()
        report = status_json(cluster, "img503")
        [reason] = report["failed_properties"].values()
        assert reason["kind"] == "server_error" and "T1_2.jpg" in reason["message"]
        assert report["result"]["by_source"]["mls"]["failures"] == {"image_server_error": 1}
        failures = cluster.cli("manifest", "img503", "--failures")
        rows = [json.loads(line) for line in failures.stdout.splitlines()]
        assert {(r["scope"], r["kind"], r["retryable"]) for r in rows} == {
            ("property", "server_error", True),
            ("image", "server_error", True),
        }
        assert any(r["source_url"].endswith("/T1_2.jpg") for r in rows if r["scope"] == "image")

        second = cluster.cli("backfill", str(props), "--run-id", "img503")
        assert second.returncode == 0, second.stderr
    result = status_json(cluster, "img503")["result"]
    assert result["properties_completed"] == 2 and result["failed_downloads"] == 0
    assert len(_processed_files(cluster.store_dir)) == 6
