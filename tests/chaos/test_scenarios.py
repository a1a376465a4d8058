"""One scenario, every fault: a backfill over real processes survives each fault injected mid-run.

The submitting CLI waits (``--wait``) while the fault happens, then the same command is run once more
(it retries what a fault failed on purpose: poison, lost, retryable); at the end nothing is lost,
nothing is stored or counted twice, and the index points at exactly the stored files.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from managers.state_manager import StateManager
from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.fault_proxy import FaultProxy
from tests.chaos.faults import Fault, RedisRestart, Scene, SourceOutage, StoreOutage, WorkerKill
from tests.chaos.invariants import (
    assert_nothing_lost_nothing_twice,
    assert_objects_decode,
    local_processed,
    s3_processed,
)
from tests.conftest import CREDS, ROOT, wait_until
from tests.integration.helpers import make_catalog, sandbox_for, write_csv

PHOTOS_EACH = 2
FAULTS: list[tuple[Fault, int, int]] = [
    # fault, properties, times it strikes
    (WorkerKill.SIGKILL, 240, 3),
    (WorkerKill.SIGTERM, 80, 2),
    (WorkerKill.CONTROL_SHUTDOWN, 80, 2),
    (RedisRestart(), 80, 1),
    (StoreOutage(), 40, 1),
    (SourceOutage(), 60, 1),
]


@pytest.mark.redis_aof
@pytest.mark.parametrize(("fault", "properties", "strikes"), FAULTS, ids=[f.name.lower() for f, _, _ in FAULTS])
def test_backfill_survives(
    fault: Fault, properties: int, strikes: int, tmp_path, cluster_factory, redis_server, s3_server
):
    listings, photos = make_catalog(properties, photos_each=PHOTOS_EACH, size=(480, 360))
    props = write_csv(tmp_path / "props.csv", listings)
    run = "chaos"
    env = CHAOS_ENV | {"HOMESHOTS_WINDOW_SIZE": str(max(10, properties // 6))}
    with sandbox_for(listings, photos, latency=0.05) as sandbox, FaultProxy(s3_server[0]) as proxy:
        if isinstance(fault, StoreOutage):
            env |= CREDS | {
                "HOMESHOTS_STORE_URL": "s3://homeshots-test/run",
                "HOMESHOTS_S3_ENDPOINT_URL": proxy.url,
                "HOMESHOTS_DOWNLOAD_TIMEOUT": "3",
            }
        cluster = cluster_factory(sandbox.env() | env, workers=0)
        scene = Scene(cluster, redis_server, sandbox=sandbox, s3_proxy=proxy)
        scene.start_worker()
        cli = subprocess.Popen(
            [sys.executable, "-m", "homeshots", "backfill", str(props), "--run-id", run],
            env=cluster.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for strike in range(strikes):
            target = (strike + 1) * properties // (strikes + 2)
            wait_until(
                lambda target=target: StateManager(scene.client, run).summary().completed >= target,
                timeout=240,
                what=f"{target} properties completed before strike {strike + 1}",
                diagnostics=cluster.worker_log,
            )
            fault.inject(scene)
            fault.recover(scene)
        out, _ = cli.communicate(timeout=500)
        assert cli.returncode == 0, out + cluster.worker_log()
        # Properties a fault failed on purpose (killed too often, lost, source down) are retried by a resume.
        again = cluster.cli("backfill", str(props), "--run-id", run, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr + cluster.worker_log()
    stored = (
        s3_processed(s3_server[1], "homeshots-test", "run/")
        if isinstance(fault, StoreOutage)
        else local_processed(cluster.store_dir)
    )
    assert_nothing_lost_nothing_twice(
        cluster,
        run,
        redis_server.client(),
        properties=properties,
        images_per_property=PHOTOS_EACH,
        extra_images=2,
        processed_objects=stored,
    )
    if isinstance(fault, StoreOutage):
        assert_objects_decode(s3_server[1], "homeshots-test", "run/")
