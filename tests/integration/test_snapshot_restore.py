"""A lost Redis is rebuilt from the store's snapshots: runs, state, manifest and the hash index."""

from __future__ import annotations

import shutil

from tests.conftest import RedisServer
from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv


def _wipe_redis(redis_server: RedisServer) -> None:
    """Lose Redis entirely: stop it, delete its files, start an empty one on the same port."""
    redis_server.stop()
    shutil.rmtree(redis_server.dir)
    redis_server.start()
    assert redis_server.client().dbsize() == 0


def test_window_snapshots_rebuild_a_lost_redis(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(7, photos_each=2, size=(800, 600))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())  # HOMESHOTS_WINDOW_SIZE=3: a chunk snapshot per window
        first = cluster.cli("backfill", str(props), "--run-id", "snap")
        assert first.returncode == 0, first.stderr + cluster.worker_log()
        before = status_json(cluster, "snap")
        rows_before = sorted(manifest_rows(cluster, "snap"), key=lambda r: r["source_url"])
        assert list((cluster.store_dir / "metadata" / "snapshots").glob("*-snap-chunk.jsonl"))

        _wipe_redis(redis_server)
        restored = cluster.cli("restore")
        assert restored.returncode == 0, restored.stderr
        assert status_json(cluster, "snap")["result"] == before["result"]
        assert sorted(manifest_rows(cluster, "snap"), key=lambda r: r["source_url"]) == rows_before

        requests = len(sandbox.request_log)
        again = cluster.cli("backfill", str(props), "--run-id", "snap")
        assert again.returncode == 0, again.stderr
        assert "7 already completed, 0 to process" in again.stdout
        assert len(sandbox.request_log) == requests

        # The restored hash index still knows every stored photo: a new run stores nothing new.
        stored = sorted(p.name for p in (cluster.store_dir / "processed").rglob("*.png"))
        other = cluster.cli("backfill", str(props), "--run-id", "snap-2")
        assert other.returncode == 0, other.stderr
    assert status_json(cluster, "snap-2")["result"]["images_stored"] == 0
    assert sorted(p.name for p in (cluster.store_dir / "processed").rglob("*.png")) == stored


def test_full_snapshot_restores_into_an_empty_redis_only(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(3, photos_each=2, size=(800, 600))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        assert cluster.cli("backfill", str(props), "--run-id", "full").returncode == 0
    before = status_json(cluster, "full")["result"]
    snap = cluster.cli("snapshot")
    assert snap.returncode == 0 and "-full.jsonl" in snap.stdout, snap.stderr
    refused = cluster.cli("restore")
    assert refused.returncode != 0 and "not empty" in refused.stderr
    _wipe_redis(redis_server)
    assert cluster.cli("restore").returncode == 0
    assert status_json(cluster, "full")["result"] == before
    assert len(manifest_rows(cluster, "full")) == 8
