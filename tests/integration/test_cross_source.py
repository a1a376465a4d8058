"""One photo from four sources at different sizes and encodings is stored once, from the largest copy."""

from __future__ import annotations

import pytest
import redis
from homeshots_sandbox import Listing, SandboxServer, generate_photo
from PIL import Image

from celery_app.app import CALLBACK_QUEUE, lane_queue
from homeshots.core.inputs import read_properties
from managers.state_manager import StateManager
from tests.conftest import wait_until
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


@pytest.mark.parametrize(
    ("order", "upgrades"),
    [(["redfin", "zillow", "mls"], {"zillow": 6, "mls": 6}), (["mls", "zillow", "redfin"], {"zillow": 0, "mls": 0})],
    ids=["smallest-first", "largest-first"],
)
def test_copies_from_all_sources_are_merged_and_the_largest_is_kept(tmp_path, cluster_factory, order, upgrades):
    """Each source's lane runs alone, in the given order: the kept copy is the largest whatever arrived first."""
    listings, photos = _catalog()
    props = write_csv(tmp_path / "props.csv", listings)
    with SandboxServer(listings, photos, services=["mls", "zillow", "redfin"]) as sandbox:
        cluster = cluster_factory(sandbox.env(), workers=0)
        sent = cluster.cli("backfill", str(props), "--run-id", "merge", "--sources", "redfin,zillow,mls", "--no-wait")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        state = StateManager(redis.Redis.from_url(cluster.env["HOMESHOTS_REDIS_URL"], decode_responses=True), "merge")
        ids = [p.property_id for p in read_properties(props)]
        for lane in order:  # Redfin 1280 px WebP, Zillow 1536 px JPEG, the MLS 2048 px
            worker = cluster.start_worker(2, name=f"only-{lane}", queues=[lane_queue(lane), CALLBACK_QUEUE])
            wait_until(
                lambda lane=lane: len(state.lane_outcomes(ids, lane)) == 2,
                timeout=90,
                what=f"the {lane} lane of both properties",
                diagnostics=cluster.worker_log,
            )
            worker.terminate()
            worker.wait(timeout=90)  # a warm shutdown finishes the task in hand; slow on a busy machine
        cluster.start_worker(1, name="callbacks", queues=[CALLBACK_QUEUE])
        wait_until(
            lambda: status_json(cluster, "merge")["status"] == "finished",
            timeout=90,
            what="the run to finish",
            diagnostics=cluster.worker_log,
        )
    result = status_json(cluster, "merge")["result"]
    assert result["properties_completed"] == 2 and result["failed_downloads"] == 0
    assert result["total_images"] == 18 and result["unique_images"] == 6 and result["duplicate_images"] == 12
    for source, count in upgrades.items():
        assert result["by_source"][source]["copies_upgraded"] == count, source

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
