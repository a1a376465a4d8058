"""One photo from four sources at different sizes and encodings is stored once, from the largest copy."""

from __future__ import annotations

from homeshots_sandbox import Listing, SandboxServer, generate_photo
from PIL import Image

from tests.integration.helpers import manifest_rows, status_json, write_csv


def _catalog() -> tuple[list[Listing], dict[str, bytes]]:
    photos, listings = {}, []
    for i in (1, 2):
        names = []
        for j in range(3):
            name = f"X{i}_{j}.jpg"
            photos[name] = generate_photo(500 + i * 10 + j, size=(2048, 1365))
            names.append(name)
        listings.append(
            Listing(
                f"X{i}",
                f"{i}0 Merge Ave",
                "Phoenix",
                "85004",
                names,
                apn=None,
                zpid=str(9_100_000 + i),
                redfin_id=str(29_100_000 + i),
            )
        )
    return listings, photos


def test_copies_from_all_sources_are_merged_and_the_largest_is_kept(tmp_path, cluster_factory):
    listings, photos = _catalog()
    props = write_csv(tmp_path / "props.csv", listings)
    with SandboxServer(listings, photos, services=["mls", "zillow", "redfin"]) as sandbox:
        cluster = cluster_factory(sandbox.env(), concurrency=2)
        # Smallest first: Redfin (1280 px WebP), then Zillow (1536 px JPEG), then the MLS (2048 px).
        proc = cluster.cli("backfill", str(props), "--run-id", "merge", "--sources", "redfin,zillow,mls")
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
    result = status_json(cluster, "merge")["result"]
    assert result["properties_completed"] == 2 and result["failed_downloads"] == 0
    assert result["total_images"] == 18 and result["unique_images"] == 6 and result["duplicate_images"] == 12
    assert result["by_source"]["zillow"]["copies_upgraded"] == 6
    assert result["by_source"]["mls"]["copies_upgraded"] == 6

    processed = sorted((cluster.store_dir / "processed").rglob("*.png"))
    raw = sorted((cluster.store_dir / "raw").rglob("*.*"))
    assert len(processed) == 6 and len(raw) == 6, "each photo stored once; replaced files are deleted"
    for path in raw:
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.width == 2048, "the kept original is the MLS's largest copy"

    rows = manifest_rows(cluster, "merge")
    assert len(rows) == 18
    by_photo: dict[str, list[dict]] = {}
    for row in rows:
        by_photo.setdefault(row["processed_key"], []).append(row)
    assert len(by_photo) == 6
    for key, copies in by_photo.items():
        assert sorted(r["source"] for r in copies) == ["mls", "redfin", "zillow"], "every source is listed"
        assert (cluster.store_dir / key).is_file()
        assert sum(r["duplicate_of"] is None for r in copies) == 1
