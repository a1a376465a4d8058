"""RabbitMQ as the broker (Celery's recommended production broker) while state stays in Redis."""

from __future__ import annotations

import contextlib
import socket

import pytest
from kombu import Connection

from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv

BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def _rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            pass
        with Connection(BROKER, connect_timeout=3) as conn:
            conn.connect()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _rabbitmq_reachable(), reason="no RabbitMQ on 127.0.0.1:5672 (guest/guest)")
def test_backfill_over_rabbitmq(tmp_path, cluster_factory):
    with Connection(BROKER) as conn:  # leftovers of an earlier run on the shared broker
        for queue in ("homeshots", "homeshots.callbacks"):
            with contextlib.suppress(Exception):  # the queue does not exist yet
                conn.default_channel.queue_purge(queue)
    listings, photos = make_catalog(4, photos_each=2, size=(640, 480))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_BROKER_URL": BROKER})
        proc = cluster.cli("backfill", str(props), "--run-id", "amqp")
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
    result = status_json(cluster, "amqp")["result"]
    assert result["properties_completed"] == 4 and result["unique_images"] == 8 and result["duplicate_images"] == 2
    assert len(manifest_rows(cluster, "amqp")) == 10
    logs = "".join(p.read_text() for p in cluster.logs.glob("*.log"))
    assert "Connected to amqp://guest:**@127.0.0.1:5672//" in logs, "the worker used RabbitMQ"
