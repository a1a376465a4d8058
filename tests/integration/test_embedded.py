"""The embedded default: no HOMESHOTS_REDIS_URL, so the CLI starts Redis and workers itself."""

from __future__ import annotations

import json

from tests.conftest import base_env
from tests.integration.helpers import make_catalog, sandbox_for, write_csv


def test_embedded_backfill_then_status_and_manifest_after_it_stopped(tmp_path):
    from tests.conftest import Cluster

    listings, photos = make_catalog(3)
    props = write_csv(tmp_path / "props.csv", listings)
    work = tmp_path / "work"
    work.mkdir()
    with sandbox_for(listings, photos) as sandbox:
        env = base_env(tmp_path) | sandbox.env()
        for name in ("HOMESHOTS_STORE_URL", "HOMESHOTS_EMBEDDED_DIR"):
            env.pop(name)  # the defaults: ./homeshots-data for images and the Redis AOF
        cluster = Cluster(env, work / "homeshots-data")
        proc = cluster.cli("backfill", str(props), "--run-id", "local", cwd=work)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, "nothing is printed at exit (Celery's result subscriptions are released)"
    data = work / "homeshots-data"
    assert "completed" in proc.stdout and str(data / "processed") in " ".join(proc.stdout.split())
    assert len(list((data / "processed").rglob("*.png"))) == 9
    assert (data / "redis" / "appendonlydir").is_dir()
    assert not (data / "redis" / "embedded.json").exists(), "the private Redis was stopped"

    status = cluster.cli("status", "local", "--json", cwd=work)
    assert status.returncode == 0, status.stderr
    result = json.loads(status.stdout)["result"]
    assert result["properties_completed"] == 3 and result["unique_images"] == 9
    manifest = cluster.cli("manifest", "local", cwd=work)
    assert manifest.returncode == 0, manifest.stderr
    assert len(manifest.stdout.splitlines()) == 11
