"""The submitting CLI is killed mid-run: the same command (same run id) finishes without redoing work."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter

from homeshots_sandbox import Listing

from managers import keys
from managers.state_manager import StateManager
from tests.chaos.conftest import CHAOS_ENV
from tests.conftest import ROOT, wait_until
from tests.integration.helpers import make_catalog, sandbox_for, status_json, write_csv

EMPTY = 600


def test_killed_cli_resumes_without_redoing_completed(tmp_path, cluster_factory, redis_server):
    listings, photos = make_catalog(20, photos_each=1, size=(480, 360))
    absent = [Listing(f"E{i}", f"{i} Nowhere Rd", "Phoenix", "85001", []) for i in range(EMPTY)]
    props = write_csv(tmp_path / "props.csv", listings + absent)  # the absent ones have no listing anywhere
    client = redis_server.client()
    with sandbox_for(listings, photos, latency=0.02) as sandbox:
        cluster = cluster_factory(sandbox.env() | CHAOS_ENV | {"HOMESHOTS_WINDOW_SIZE": "50"}, concurrency=2)
        cli = [sys.executable, "-m", "homeshots", "backfill", str(props), "--run-id", "cli"]
        first = subprocess.Popen(cli, env=cluster.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(
            lambda: StateManager(client, "cli").summary().completed >= 60,
            timeout=120,
            what="60 properties completed",
            diagnostics=cluster.worker_log,
            poll=0.05,
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        completed_before = set(StateManager(client, "cli").completed_ids())
        keys_before = {_key(pid, client) for pid in completed_before}

        again = subprocess.run(cli, env=cluster.env, cwd=ROOT, capture_output=True, text=True, timeout=500)
        assert again.returncode == 0, again.stdout + again.stderr + cluster.worker_log()
        asked = Counter(
            m.group(1) for t in sandbox.request_targets if (m := re.search(r"ListingKey[+ ]eq[+ ]'([^']+)'", t))
        )
    result = status_json(cluster, "cli")["result"]
    assert result["properties_completed"] == 20 + EMPTY and result["properties_failed"] == 0
    assert result["properties_skipped"] >= len(completed_before)
    assert all(asked[key] == 1 for key in keys_before), "a property completed before the kill was not redone"
    assert result["unique_images"] == 20 and len(list((cluster.store_dir / "processed").rglob("*.png"))) == 20


def _key(pid: str, client) -> str:
    """The listing key of a completed property, from its window record in Redis."""
    return _LISTING_KEYS.setdefault(pid, _lookup(pid, client))


_LISTING_KEYS: dict[str, str] = {}


def _lookup(pid: str, client) -> str:
    import json

    for key in client.scan_iter(keys.RunKeys("cli").window_pattern()):
        for prop in json.loads(client.get(key)):
            _LISTING_KEYS[prop["property_id"]] = prop["mls_listing_key"]
    return _LISTING_KEYS[pid]
