"""A killed embedded backfill leaves no orphans and resumes where it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import redis

from managers.state_manager import StateManager
from tests.conftest import base_env, wait_until
from tests.integration.helpers import make_catalog, sandbox_for, write_csv


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_sigkilled_cli_stops_its_redis_and_workers_and_resumes(tmp_path):
    listings, photos = make_catalog(12, photos_each=2)
    props = write_csv(tmp_path / "props.csv", listings)
    work = tmp_path / "work"
    work.mkdir()
    with sandbox_for(listings, photos, latency=0.3) as sandbox:
        env = base_env(tmp_path) | sandbox.env() | {"HOMESHOTS_WORKER_CONCURRENCY": "1"}
        env.pop("HOMESHOTS_STORE_URL")
        env.pop("HOMESHOTS_EMBEDDED_DIR")
        cli = [sys.executable, "-m", "homeshots", "backfill", str(props), "--run-id", "killed"]
        proc = subprocess.Popen(cli, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        info = work / "homeshots-data" / "redis" / "embedded.json"
        wait_until(lambda: info.exists() or proc.poll() is not None, timeout=60, what="the embedded Redis", poll=0.05)
        assert proc.poll() is None, "the CLI stopped before its Redis started"
        embedded = json.loads(info.read_text())
        client = redis.Redis(port=embedded["port"], decode_responses=True)
        # Kill it part-way: some done, most not.
        wait_until(
            lambda: StateManager(client, "killed").summary().completed >= 2 or proc.poll() is not None,
            timeout=60,
            what="two completed properties",
            poll=0.05,
        )
        assert proc.poll() is None, "the CLI finished before it could be killed part-way"
        redis_pid = embedded["pid"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(lambda: not _alive(redis_pid), timeout=60, what="the embedded redis-server to die with the CLI")
        stored_before = len(list((work / "homeshots-data" / "processed").rglob("*.png")))
        assert 0 < stored_before < 24

        again = subprocess.run(cli, env=env, cwd=work, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already completed" in again.stdout
        status = subprocess.run(
            [sys.executable, "-m", "homeshots", "status", "killed", "--json"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=60,
        )
    result = json.loads(status.stdout)["result"]
    assert result["properties_completed"] == 12 and result["properties_failed"] == 0
    assert result["properties_skipped"] > 0
    assert len(list((work / "homeshots-data" / "processed").rglob("*.png"))) == 24, "each photo stored once"
