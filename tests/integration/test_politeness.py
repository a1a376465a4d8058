"""Politeness is cluster-wide: two worker processes share one token bucket and one 429 pause."""

from __future__ import annotations

from tests.integration.helpers import make_catalog, sandbox_for, status_json, write_csv


def _api_times(sandbox, prefix: str = "/reso/odata/Property") -> list[float]:
    return [
        t for (_, path), t in zip(sandbox.request_log, sandbox.request_times, strict=True) if path.startswith(prefix)
    ]


LAG = 0.5
"""Seconds a lane may take from reserving its tokens to its first request (its start, on a busy machine)."""


def test_two_workers_share_one_rate_limit(tmp_path, cluster_factory):
    listings, photos = make_catalog(12, photos_each=1)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_MLS_RATE": "4"}, workers=2, concurrency=2)
        proc = cluster.cli("backfill", str(props), "--run-id", "polite")
        assert proc.returncode == 0, proc.stderr + cluster.worker_log()
        times = sorted(_api_times(sandbox, "/reso/") + _api_times(sandbox, "/oauth2/"))
    assert status_json(cluster, "polite")["result"]["properties_completed"] == 12
    logs = [p.read_text() for p in sorted(cluster.logs.glob("w*.log"))]
    assert all("succeeded" in log for log in logs), "both worker processes took part"
    # 4 processes could send all of these within a few milliseconds; the shared bucket (4/s, burst 4)
    # lets through at most 4 at once plus 4 per second, whatever the number of workers. A lane reserves its
    # tokens just before it starts and sends a moment later (LAG), so the first request trails the first token.
    span = times[-1] - times[0]
    assert len(times) >= 12
    assert len(times) <= 4 + 4 * (span + LAG) + 1, f"{len(times)} requests in {span:.2f}s"
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t - start < 1.0]
        assert len(in_window) <= 4 + 4 + 1, "no second holds more than burst + rate requests"


def test_a_429_pauses_the_source_for_every_worker(tmp_path, cluster_factory):
    listings, photos = make_catalog(8, photos_each=1)
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_MLS_RATE": "100"}, workers=2, concurrency=2)
        sandbox.fail("/reso/odata/Property", 429, times=1, retry_after="3")
        proc = cluster.cli("backfill", str(props), "--run-id", "throttled")
        assert proc.returncode == 0, proc.stderr + cluster.worker_log()
        times = sorted(_api_times(sandbox))
    assert status_json(cluster, "throttled")["result"]["properties_completed"] == 8
    throttled_at = times[0]
    during_pause = [t for t in times if throttled_at + 0.25 < t < throttled_at + 2.8]
    assert not during_pause, f"{len(during_pause)} requests were sent while the source was paused"
    assert times[-1] - throttled_at >= 2.8
