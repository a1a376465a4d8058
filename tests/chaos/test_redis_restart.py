"""Restart Redis (append-only file on) mid-run: workers and the CLI reconnect, the run completes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.invariants import assert_nothing_lost_nothing_twice, local_processed
from tests.conftest import ROOT
from tests.integration.helpers import make_catalog, sandbox_for, write_csv

PROPERTIES = 80


@pytest.mark.redis_aof
def test_redis_restart_mid_run(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(PROPERTIES, photos_each=2, size=(480, 360))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos, latency=0.05) as sandbox:
        cluster = cluster_factory(sandbox.env() | CHAOS_ENV | {"HOMESHOTS_WINDOW_SIZE": "20"}, concurrency=2)
        cli = subprocess.Popen([sys.executable, "-m", "homeshots", "backfill", str(props), "--run-id", "aof"],
                               env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while redis_server.client().scard("hs:run:{aof}:completed") < PROPERTIES // 3:
            assert time.monotonic() < deadline and cli.poll() is None, cluster.worker_log()
            time.sleep(0.1)
        redis_server.stop()  # SIGTERM: Redis fsyncs its append-only file and exits
        time.sleep(3)
        redis_server.start()
        out, _ = cli.communicate(timeout=500)
        assert cli.returncode == 0, out + cluster.worker_log()
    assert_nothing_lost_nothing_twice(cluster, "aof", redis_server.client(), properties=PROPERTIES,
                                      images_per_property=2, extra_images=2,
                                      processed_objects=local_processed(cluster.store_dir))
