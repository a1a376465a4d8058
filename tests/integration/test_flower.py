"""Flower over real processes: refused without auth, and with auth it lists workers and readable tasks."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from homeshots.ops.embedded import free_port
from tests.conftest import ROOT
from tests.integration.helpers import make_catalog, sandbox_for, write_csv


def test_flower_refuses_to_start_without_auth(tmp_path, cluster_factory):
    cluster = cluster_factory({}, workers=0)
    proc = cluster.cli("flower", "--port", str(free_port()), timeout=60)
    assert proc.returncode == 2
    assert "refusing to start Flower without authentication" in " ".join(proc.stderr.split())


def test_flower_with_basic_auth_lists_workers_and_named_tasks(tmp_path, cluster_factory):
    listings, photos = make_catalog(2, photos_each=1, size=(640, 480))
    props = write_csv(tmp_path / "props.csv", listings)
    port = free_port()
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_FLOWER_BASIC_AUTH": "admin:s3cret-pass"})
        flower = subprocess.Popen(
            [sys.executable, "-m", "homeshots", "flower", "--port", str(port)],
            env=cluster.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cluster.workers.append(flower)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                refused = httpx.get(f"{base}/api/workers", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and flower.poll() is None, "Flower did not start"
                time.sleep(0.3)
        assert refused.status_code == 401
        assert httpx.get(f"{base}/api/workers", auth=("admin", "wrong"), timeout=5).status_code == 401
        assert cluster.cli("backfill", str(props), "--run-id", "seen").returncode == 0
        auth = ("admin", "s3cret-pass")
        deadline = time.monotonic() + 60
        while True:
            workers = httpx.get(f"{base}/api/workers", params={"refresh": "1"}, auth=auth, timeout=30).json()
            tasks = httpx.get(f"{base}/api/tasks", auth=auth, timeout=10).json()
            if workers and len(tasks) >= 2:
                break
            assert time.monotonic() < deadline, (workers, tasks)
            time.sleep(0.5)
    assert any(name.startswith("w1-0@") for name in workers)
    names = {t["name"] for t in tasks.values()}
    assert "homeshots.extract_lane" in names
    shown = [t["args"] for t in tasks.values() if t["name"] == "homeshots.extract_lane"]
    assert all("run=seen property=p-" in args and "Test St" in args for args in shown)
