"""A lane task that runs twice (what redelivery does) is counted once and stored once."""

from __future__ import annotations

from homeshots.core.settings import get_settings
from managers.run_manager import RunManager
from tests.conftest import wait_until
from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv


def test_duplicate_delivery_of_a_property_counts_once(tmp_path, cluster_factory, redis_server, monkeypatch):
    listings, photos = make_catalog(3)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env(), concurrency=2)
        baseline = cluster.cli("backfill", str(props), "--run-id", "once")
        assert baseline.returncode == 0, baseline.stderr + cluster.worker_log()
        expected = status_json(cluster, "once")["result"]
        stored = sorted(p.name for p in (cluster.store_dir / "processed").rglob("*.png"))

        # The same window again in a fresh run, but with every property delivered twice.
        monkeypatch.setenv("HOMESHOTS_REDIS_URL", redis_server.url)
        monkeypatch.setenv("HOMESHOTS_STORE_URL", cluster.env["HOMESHOTS_STORE_URL"])
        get_settings.cache_clear()
        from celery_app import configure
        from homeshots.core.inputs import read_properties
        from tests.integration.test_redelivery import _submit_doubled

        configure(get_settings())
        items = [p.to_dict() for p in read_properties(props)]
        _submit_doubled(redis_server.client(), "twice", items)
        wait_until(
            lambda: RunManager(redis_server.client(), "twice").meta().get("status") == "finished",
            timeout=120,
            what="the run to finish",
            diagnostics=cluster.worker_log,
        )
    get_settings.cache_clear()
    doubled = status_json(cluster, "twice")["result"]
    for key in ("properties_completed", "total_images", "unique_images", "duplicate_images", "failed_downloads"):
        assert doubled[key] == expected[key], key
    assert doubled["by_source"]["mls"]["images_found"] == expected["by_source"]["mls"]["images_found"]
    assert len(manifest_rows(cluster, "twice")) == len(manifest_rows(cluster, "once"))
    assert sorted(p.name for p in (cluster.store_dir / "processed").rglob("*.png")) == stored


def _submit_doubled(client, run_id: str, items: list[dict]) -> None:
    """One chunk whose chord holds every lane task twice (the window itself lists each property once)."""
    from tasks.chunks import submit_chunk
    from tasks.lanes import plan_lanes

    runs = RunManager(client, run_id)
    generation = runs.start_submission(input_file="doubled", sources=["mls"], reset=True)
    runs.write_window(generation, 0, items)
    lanes = plan_lanes(get_settings(), ["mls"], 1)
    runs.finish_submission(
        generation, total_properties=len(items), skipped=0, windows=1, lanes=lanes, in_flight=1, bad_rows=[]
    )
    members = [(item, ["mls"]) for item in items + items]
    submit_chunk(client, run_id, generation, "mls", 0, members=members)
