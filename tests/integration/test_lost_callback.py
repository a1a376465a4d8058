"""A chunk whose callback never ran is found and finished by ``homeshots resume`` (and the workers)."""

from __future__ import annotations

import subprocess
import sys

from celery_app.app import CALLBACK_QUEUE, QUEUES
from managers.state_manager import StateManager
from tests.conftest import ROOT, wait_until
from tests.integration.helpers import make_catalog, sandbox_for, status_json, write_csv


def _start_property_only_worker(cluster) -> subprocess.Popen:
    """A worker that consumes lane tasks but never the callbacks queue."""
    log = (cluster.logs / "props-only.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_app",
            "worker",
            "-Q",
            ",".join(q for q in QUEUES if q != CALLBACK_QUEUE),
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--hostname=props-only@%h",
        ],
        env=cluster.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    cluster.workers.append(proc)
    return proc


def test_resume_finishes_chunks_whose_callbacks_were_lost(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(5, photos_each=2, size=(800, 600))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_WINDOWS_IN_FLIGHT": "2"}, workers=0)
        worker = _start_property_only_worker(cluster)
        sent = cluster.cli("backfill", str(props), "--run-id", "lost", "--no-wait")
        assert sent.returncode == 0, sent.stderr
        client = redis_server.client()
        # Windows 0 and 1 (3 + 2 properties).
        wait_until(
            lambda: StateManager(client, "lost").summary().completed >= 5,
            timeout=60,
            what="windows 0 and 1",
            diagnostics=cluster.worker_log,
        )
        worker.terminate()
        worker.wait(timeout=30)
        assert client.llen("homeshots.callbacks") >= 1
        client.delete("homeshots.callbacks")  # the callback messages are lost
        assert status_json(cluster, "lost")["status"] == "running"
        in_progress = cluster.cli("status", "lost")
        assert "progress: 5/5 properties (0 failed)" in " ".join(in_progress.stdout.split()), in_progress.stdout

        cluster.start_worker(concurrency=2, name="healer")
        resumed = cluster.cli("resume", "lost")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr + cluster.worker_log()
        assert "callbacks of chunks mls:0, mls:1" in " ".join(resumed.stdout.split())
    report = status_json(cluster, "lost")
    assert report["status"] == "finished"
    assert report["result"]["properties_completed"] == 5
    assert report["result"]["total_images"] == 12 and report["result"]["unique_images"] == 10
