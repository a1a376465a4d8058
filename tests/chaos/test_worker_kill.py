"""SIGKILL the whole worker three times mid-run: the run completes, nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import time

from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.invariants import assert_nothing_lost_nothing_twice, local_processed
from tests.integration.helpers import make_catalog, sandbox_for, write_csv

PROPERTIES = 240


def test_sigkill_worker_three_times(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(PROPERTIES, photos_each=2, size=(480, 360))
    props = write_csv(tmp_path / "props.csv", listings)
    client = redis_server.client()
    with sandbox_for(listings, photos, latency=0.05) as sandbox:
        cluster = cluster_factory(sandbox.env() | CHAOS_ENV | {"HOMESHOTS_WINDOW_SIZE": "40"}, workers=0)
        worker = cluster.start_worker(concurrency=2, name="victim-0")
        sent = cluster.cli("backfill", str(props), "--run-id", "kill3", "--no-wait")
        assert sent.returncode == 0, sent.stderr
        for kill in range(3):
            target = (kill + 1) * PROPERTIES // 5
            deadline = time.monotonic() + 180
            while client.scard("hs:run:{kill3}:completed") < target:
                assert time.monotonic() < deadline, cluster.worker_log()
                time.sleep(0.1)
            os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool, mid-task
            worker.wait()
            worker = cluster.start_worker(concurrency=2, name=f"victim-{kill + 1}")
        done = cluster.cli("resume", "kill3", timeout=500)
        assert done.returncode == 0, done.stdout + done.stderr + cluster.worker_log()
        # Properties whose task was killed too often are failed with a reason; a resume retries them.
        retried = cluster.cli("backfill", str(props), "--run-id", "kill3", timeout=300)
        assert retried.returncode == 0, retried.stdout + retried.stderr
    assert_nothing_lost_nothing_twice(cluster, "kill3", client, properties=PROPERTIES, images_per_property=2,
                                      extra_images=2, processed_objects=local_processed(cluster.store_dir))
