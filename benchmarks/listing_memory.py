"""Peak memory of one worker process against the number of big photos in one listing.

Run from the repo root: ``python -m benchmarks.listing_memory [--counts 1,10,25,50]``.

A listing of N photos of ~16 MB each (a 24 MP JPEG with grain) is served by the
sandbox's MLS on 127.0.0.1; a fresh process runs the real ``PropertyPipeline`` on it (private Redis,
local store) and reports its peak RSS (``VmHWM``). Each count runs twice: with the default byte budget
for bodies waiting for the image lane (``HOMESHOTS_MAX_BUFFERED_BYTES``), and with the budget lifted
(the baseline: every downloaded body waits in memory, as before the budget existed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.redis_server import private_redis

ROOT = Path(__file__).resolve().parent.parent
NO_BUDGET = str(64 << 30)


def _child(prop_json: str) -> dict[str, float]:
    from homeshots.core.models import Property
    from homeshots.core.settings import get_settings
    from homeshots.pipeline.lane_pipeline import PropertyPipeline
    from homeshots.pipeline.worker_context import WorkerContext

    settings = get_settings()
    ctx = WorkerContext(settings)
    outcome = ctx.run(PropertyPipeline(ctx, "bench").run(Property.from_dict(json.loads(prop_json)), ["mls"]))
    status = Path("/proc/self/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {
        "peak_mb": hwm / 1024,
        "images": outcome.counters.get("run.total_images", 0),
        "budget_peak_mb": ctx.byte_budget.peak / 2**20,
    }


def _big_jpeg() -> bytes:
    import io

    from PIL import Image, ImageChops

    w, h = 6000, 4000
    base = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    grain = Image.merge("RGB", [Image.effect_noise((w, h), 40) for _ in range(3)])
    out = io.BytesIO()
    ImageChops.add(base, grain, scale=1.0, offset=-128).save(out, "JPEG", quality=93)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--counts", default="1,10,25,50")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0
    from homeshots_sandbox import Listing, SandboxServer

    counts = [int(c) for c in args.counts.split(",")]
    photo = _big_jpeg()
    print(f"photo: {len(photo) / 1e6:.1f} MB JPEG, 6000x4000", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, private_redis() as client:
        port = client.connection_pool.connection_kwargs["port"]
        redis_url = f"redis://127.0.0.1:{port}/0"
        for count in counts:
            names = [f"big{i}.jpg" for i in range(count)]
            listing = Listing("BIG", "1 Big St", "Phoenix", "85001", names)
            with SandboxServer([listing], dict.fromkeys(names, photo), services=["mls"]) as sandbox:
                peaks = {}
                for label, budget in (("budget", None), ("no budget", NO_BUDGET)):
                    env = (
                        dict(os.environ)
                        | sandbox.env()
                        | {
                            "HOMESHOTS_REDIS_URL": redis_url,
                            "HOMESHOTS_STORE_URL": f"file://{tmp}/store-{count}-{label}",
                            "HOMESHOTS_MAX_PHOTOS_PER_LISTING": str(count),
                            "PYTHONPATH": str(ROOT),
                        }
                    )
                    if budget:
                        env["HOMESHOTS_MAX_BUFFERED_BYTES"] = budget
                    prop = json.dumps(
                        {"property_id": f"big-{count}-{label}", "address": "1 Big St", "mls_listing_key": "BIG"}
                    )
                    proc = subprocess.run(
                        [sys.executable, "-m", "benchmarks.listing_memory", "--child", prop],
                        env=env,
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        timeout=900,
                    )
                    if proc.returncode != 0:
                        raise RuntimeError(proc.stderr[-3000:])
                    peaks[label] = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((count, peaks))
    print(
        f"| photos per listing ({len(photo) / 1e6:.0f} MB each) | peak RSS MB, byte budget (default) | "
        "bodies held at most MB | peak RSS MB, no budget (baseline) | ratio |"
    )
    print("|---|---|---|---|---|")
    for count, peaks in rows:
        ours, base = peaks["budget"]["peak_mb"], peaks["no budget"]["peak_mb"]
        print(f"| {count} | {ours:.0f} | {peaks['budget']['budget_peak_mb']:.0f} | {base:.0f} | {ours / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
