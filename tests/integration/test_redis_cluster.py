"""A backfill with its state on a real 3-master Redis Cluster: every operation slot-safe, the run spread out.

The broker and Celery's results stay on a plain Redis (``HOMESHOTS_BROKER_URL``,
``HOMESHOTS_RESULT_BACKEND_URL``), never on the cluster. Status, manifest, snapshot and restore read
every node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from homeshots_sandbox.redis_servers import LocalRedisCluster

from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[LocalRedisCluster]:
    cluster = LocalRedisCluster(tmp_path / "cluster", masters=3, appendonly=True)
    cluster.start()
    yield cluster
    cluster.stop()


def _homeshots_keys(node) -> list[str]:
    return list(node.client().scan_iter("hs:*", count=1000))


def test_a_backfill_runs_on_a_redis_cluster(tmp_path, cluster_factory, redis_server, redis_cluster) -> None:
    listings, photos = make_catalog(40, photos_each=2, size=(900, 600))
    props = write_csv(tmp_path / "props.csv", listings)
    env = {
        "HOMESHOTS_REDIS_URL": redis_cluster.url,
        "HOMESHOTS_REDIS_CLUSTER": "true",
        "HOMESHOTS_BROKER_URL": redis_server.url,
        "HOMESHOTS_RESULT_BACKEND_URL": redis_server.url.rsplit("/", 1)[0] + "/1",
        "HOMESHOTS_WINDOW_SIZE": "10",
    }
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | env, workers=1, concurrency=2)
        proc = cluster.cli("backfill", str(props), "--run-id", "on-cluster", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
    result = status_json(cluster, "on-cluster")["result"]
    assert result["properties_completed"] == 40 and result["properties_failed"] == 0
    listed = sum(len(listing.photos) for listing in listings)
    assert result["total_images"] == listed and result["unique_images"] == 80, "T2 and T3 repeat two of T1's photos"
    assert len(manifest_rows(cluster, "on-cluster")) == listed

    per_node = [_homeshots_keys(node) for node in redis_cluster.nodes]
    total = sum(len(k) for k in per_node)
    assert max(len(k) for k in per_node) <= 0.6 * total, f"keys per node: {[len(k) for k in per_node]}"
    for node in redis_cluster.nodes:
        foreign = [k for k in node.client().scan_iter(count=1000) if not k.startswith("hs:")]
        assert not foreign, f"broker or result keys on the state cluster: {foreign[:5]}"
    assert list(redis_server.client().scan_iter("_kombu.binding.*")), "the broker is the plain Redis"

    # A lost cluster comes back from the store's snapshots, read and written across all nodes.
    assert cluster.cli("snapshot").returncode == 0
    for node in redis_cluster.nodes:
        node.client().flushall()
    restored = cluster.cli("restore")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    again = status_json(cluster, "on-cluster")["result"]
    for key in ("properties_completed", "total_images", "unique_images", "duplicate_images"):
        assert again[key] == result[key], key
    assert len(manifest_rows(cluster, "on-cluster")) == listed
