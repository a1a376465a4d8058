"""Run one property through the real pipeline in a fresh process and report what happened, as JSON.

``python -m tests.hostile.runner RUN_ID PROPERTY_JSON`` with the ``HOMESHOTS_*`` environment of the
case: a fresh process per case, so its peak RSS (``ru_maxrss``) is the memory that one hostile input
cost, and one case cannot hide in another's heap.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from homeshots.core.models import Property
from homeshots.core.settings import get_settings
from homeshots.pipeline.lane_pipeline import PropertyPipeline
from homeshots.pipeline.worker_context import WorkerContext
from managers.manifest_manager import ManifestManager


def _peak_mb() -> float:
    """This process's high-water RSS (VmHWM: per address space, so not inherited from the parent)."""
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(run_id: str, prop_json: str) -> dict[str, object]:
    prop = Property.from_dict(json.loads(prop_json))
    settings = get_settings()
    ctx = WorkerContext(settings)
    ctx.deduplicator  # noqa: B018  connections and scripts before measuring
    baseline = _peak_mb()
    started = time.monotonic()
    try:
        outcome = ctx.run(
            asyncio.wait_for(PropertyPipeline(ctx, run_id).run(prop, settings.sources), settings.task_soft_time_limit)
        )
        escaped = None
    except Exception as exc:  # the pipeline must not raise for a hostile input: report it as a failure of the suite
        outcome, escaped = None, f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    manifest = ManifestManager(ctx.redis, run_id)
    lanes = manifest.for_properties([prop.property_id], settings.sources).get(prop.property_id, {})
    rows = [row for lane_rows, _ in lanes.values() for row in lane_rows]
    failures = [failure for _, lane_failures in lanes.values() for failure in lane_failures]
    return {
        "status": outcome.status if outcome else "escaped",
        "reason": outcome.reason if outcome else {"kind": "escaped", "message": escaped},
        "counters": outcome.counters if outcome else {},
        "stored": sum(1 for r in rows if r["duplicate_of"] is None),
        "rows": len(rows),
        "image_kinds": sorted(f["kind"] for f in failures),
        "records": json.dumps(rows + failures),
        "seconds": round(seconds, 2),
        "peak_mb": round(_peak_mb(), 1),
        "baseline_mb": round(baseline, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
