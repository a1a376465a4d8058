"""Lanes in a mixed run: the MLS lane finishes at the MLS's pace while Zillow trickles, and no worker slot
waits for a Zillow token (its tasks give the slot back and come back when their tokens are due)."""

from __future__ import annotations

import csv
import re
import time

import redis

from homeshots.core.inputs import read_properties
from managers.state_manager import StateManager
from tests.conftest import wait_until
from tests.integration.helpers import make_catalog, sandbox_for, status_json

ZILLOW_RATE = 1.0
ZILLOW_ONES = 8
"""Properties also visited on Zillow: two requests each (address search, redirect) at 1/s: about 16 s."""


def test_the_mls_lane_does_not_wait_for_zillow(tmp_path, cluster_factory):
    listings, photos = make_catalog(24, photos_each=1, size=(400, 300))
    props = tmp_path / "props.csv"
    with props.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["address", "city", "state", "zip", "mls_listing_key", "sources"])
        writer.writeheader()
        for i, listing in enumerate(listings):
            writer.writerow(
                {
                    "address": listing.address,
                    "city": listing.city,
                    "state": "AZ",
                    "zip": listing.postal_code,
                    "mls_listing_key": listing.listing_key,
                    "sources": "mls;zillow" if i < ZILLOW_ONES else "mls",
                }
            )
    ids = [p.property_id for p in read_properties(props)]
    mls_only, with_zillow = ids[ZILLOW_ONES:], ids[:ZILLOW_ONES]
    env = {"HOMESHOTS_ZILLOW_RATE": str(ZILLOW_RATE), "HOMESHOTS_SOURCES": "mls,zillow"}
    with sandbox_for(listings, photos, services=["mls", "zillow"]) as sandbox:
        cluster = cluster_factory(sandbox.env() | env, workers=1, concurrency=2)
        sent = cluster.cli("backfill", str(props), "--run-id", "mixed", "--no-wait")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        state = StateManager(redis.Redis.from_url(cluster.env["HOMESHOTS_REDIS_URL"], decode_responses=True), "mixed")
        wait_until(
            lambda: state.completed_among(mls_only) == set(mls_only),
            timeout=120,
            what="every MLS-only property",
            diagnostics=cluster.worker_log,
        )
        zillow_done_then = len(state.lane_outcomes(with_zillow, "zillow"))
        mls_done_at = time.monotonic()
        wait_until(
            lambda: status_json(cluster, "mixed")["status"] == "finished",
            timeout=180,
            what="the run to finish",
            diagnostics=cluster.worker_log,
        )
        zillow_span = time.monotonic() - mls_done_at
    result = status_json(cluster, "mixed")["result"]
    assert result["properties_completed"] == 24
    assert zillow_done_then < ZILLOW_ONES / 2, f"{zillow_done_then} Zillow visits done when the MLS lane was"
    assert zillow_span > 3, "Zillow kept trickling after the MLS-only properties were all completed"
    # Every Zillow task's time in a worker slot: a task that slept for its tokens would hold its slot for
    # seconds; parked ones retried instead ("Retry in Ns"), so the slots were free for the MLS lane.
    log = "\n".join(path.read_text(errors="replace") for path in cluster.logs.glob("*.log"))
    zillow_runs = [
        float(m.group(1))
        for m in re.finditer(
            r"Task homeshots\.extract_lane\[[^\]]+\] succeeded in ([0-9.]+)s: \{[^}]*'lane': 'zillow'", log
        )
    ]
    assert zillow_runs and max(zillow_runs) < 3.0, f"a Zillow task held its slot for {max(zillow_runs):.1f} s"
    assert "Retry in" in log, "Zillow tasks gave their slot back until their tokens were due"
