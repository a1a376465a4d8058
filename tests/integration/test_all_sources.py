"""The example properties against the sandbox's four sources: what ``make demo`` shows."""

from __future__ import annotations

from homeshots_sandbox import default_sandbox

from tests.conftest import ROOT
from tests.integration.helpers import manifest_rows, status_json


def test_example_backfill_uses_all_four_sources(cluster_factory):
    with default_sandbox(None) as sandbox:
        cluster = cluster_factory(sandbox.env(), concurrency=2)
        proc = cluster.cli("backfill", str(ROOT / "examples" / "properties.csv"), "--run-id", "all4")
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
    assert "BLOCKED: zillow" in proc.stdout
    result = status_json(cluster, "all4")["result"]
    by_source = result["by_source"]
    assert set(by_source) == {"mls", "maricopa", "zillow", "redfin"}
    assert all(stats["images_found"] > 0 for stats in by_source.values())
    assert result["blocked_sources"] == {"zillow": 1}
    assert by_source["maricopa"]["images_stored"] == 11, "one sketch per parcel the assessor knows"
    assert by_source["zillow"]["copies_upgraded"] == 4, "the old MLS feed's small copies were replaced"
    processed = list((cluster.store_dir / "processed").rglob("*.png"))
    assert len(processed) == result["unique_images"] == result["images_stored"]

    rows = manifest_rows(cluster, "all4")
    assert len(rows) == result["unique_images"] + result["duplicate_images"]
    sketch = next(r for r in rows if r["source"] == "maricopa")
    assert sketch["source_url"].startswith("maricopa:inline:")
    assert {r["source"] for r in rows if r["duplicate_of"]} >= {"zillow", "redfin"}
