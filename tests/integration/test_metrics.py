"""The Prometheus exporter, scraped over HTTP after a real run."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from homeshots.ops.embedded import free_port
from tests.conftest import ROOT
from tests.integration.helpers import make_catalog, sandbox_for, write_csv


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_show_run_progress_images_and_queue_depth(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(4, size=(640, 480))
    props = write_csv(tmp_path / "props.csv", listings)
    port = free_port()
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_MLS_RATE": "2"})
        assert cluster.cli("backfill", str(props), "--run-id", "m1").returncode == 0
        cluster.stop()  # no worker: the next run's first two MLS chunks (3 + 1 properties) wait in its queue
        waiting = cluster.cli("backfill", str(props), "--run-id", "m2", "--no-wait")
        assert waiting.returncode == 0, waiting.stderr
        exporter = subprocess.Popen(
            [sys.executable, "-m", "homeshots", "metrics", "--port", str(port)],
            env=cluster.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cluster.workers.append(exporter)
        deadline = time.monotonic() + 30
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and exporter.poll() is None
                time.sleep(0.2)
    samples = _samples(text)
    assert samples[("homeshots_run_properties", (("run", "m1"), ("state", "completed")))] == 4
    assert samples[("homeshots_run_properties", (("run", "m1"), ("state", "total")))] == 4
    images = {
        kind: samples[("homeshots_run_images", (("kind", kind), ("run", "m1"), ("source", "mls")))]
        for kind in ("found", "stored", "duplicate", "failed")
    }
    assert images == {"found": 14, "stored": 12, "duplicate": 2, "failed": 0}
    assert samples[("homeshots_run_finished", (("run", "m1"),))] == 1
    assert samples[("homeshots_queue_depth", (("queue", "homeshots.src.mls"),))] == 4, "the MLS lane's first chunks"
    assert samples[("homeshots_run_finished", (("run", "m2"),))] == 0
    assert samples[("homeshots_token_bucket_wait_seconds_total", (("source", "mls"),))] > 0
