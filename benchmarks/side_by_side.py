"""Side by side, per core: homeshots' whole pipeline against img2dataset 1.47 and the bare Pillow floor.

Run from the repo root: ``python -m benchmarks.side_by_side [--images 120] [--rounds 3]`` (~4 min on 2
cores the first time, img2dataset's install included; results and their reading in
``benchmarks/RESULTS.md``, "Side by side").

The same photos go through three legs (``benchmarks.side_by_side_legs``), each using every core:

* **homeshots**: ``python -m homeshots backfill`` on the embedded default (private redis-server,
  local Celery workers, a local-folder store), MLS only, against the sandbox on 127.0.0.1 serving
  the photos, ``--each`` photos per listing; a fresh data folder every run, so nothing is deduplicated
  against an earlier run.
* **img2dataset** 1.47, installed into its own virtualenv (``--img2dataset-venv``, never the
  project's), fed the sandbox's URLs of the same photos: ``resize_mode=keep_ratio_largest``,
  ``image_size=1024``, never enlarged (``resize_only_if_bigger``, as homeshots), PNG level 1,
  ``output_format=files``, ``processes_count`` = cores, default ``incremental_mode``, a fresh folder.
* **floor**: one process per core doing Pillow decode with draft, EXIF transpose, LANCZOS to 1024
  and PNG level 1 ``rle``, nothing else, on the photos read from files.

Photos: ``../shared/datasets/houses`` beside the checkout (else generated ones), upscaled to 3000 px
(JPEG q90) like MLS originals, and at their original size. Rounds are interleaved (each round runs
every set through every leg, legs in a rotating order). Per run: **steady** images/s per core over
the middle 90% of the finish stamps (start-up and the last stragglers left out), the same divided by
the whole command's wall time (**end to end**), CPU ms per image of the command's process tree in
the steady window, the share of the cores it kept busy (of all, and of what the other load and the
photo server left free), and the other load on the machine (busy CPU minus the leg and this process,
which serves the photos). Round 1 also compares the outputs: size,
format, bytes, and the mean absolute pixel difference.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.side_by_side_legs import (
    DEFAULT_IMG2DATASET_VENV,
    SAMPLE_SECONDS,
    LegRun,
    Sample,
    floor_leg,
    homeshots_leg,
    img2dataset_exe,
    img2dataset_leg,
)

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "houses"
LEGS = ("homeshots", "img2dataset", "floor")
TRIM = 0.05
"""Share of finish stamps left out at each end of a run: start-up and the last stragglers."""
TARGETS = {"img2dataset": 1.2, "floor": 0.95}
BUSY_TARGET = 0.95


# --- photos ------------------------------------------------------------------------------------------
@dataclass
class PhotoSet:
    label: str
    photos: dict[str, bytes]
    """Served name -> JPEG bytes."""


def _scaled(data: bytes, longest: int) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        im = opened.convert("RGB")
    scale = longest / max(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def photo_sets(count: int, sizes: list[str], folder: Path | None) -> tuple[list[PhotoSet], str]:
    """One set per size ("original" or a longest side in px) of the same ``count`` photos, and their origin:
    the first ``count`` JPEGs of ``folder`` when it has that many, else generated ones."""
    from homeshots_sandbox import generate_photo

    files = sorted(folder.glob("*.jpg"))[:count] if folder is not None and folder.is_dir() else []
    if len(files) == count:
        originals = {p.name: p.read_bytes() for p in files}
        origin = f"{folder} ({count} photos, {min(len(p.read_bytes()) for p in files) // 1000}+ kB JPEGs)"
    else:
        shapes = [(720, 480), (1024, 683), (640, 480), (580, 436)]
        originals = {f"gen{i:04d}.jpg": generate_photo(20_000 + i, size=shapes[i % len(shapes)]) for i in range(count)}
        origin = "generated (homeshots_sandbox.generate_photo, 580-1024 px JPEG q90)"
    sets = []
    for size in sizes:
        label = "original" if size == "original" else f"{int(size)} px"
        photos = originals if size == "original" else {n: _scaled(d, int(size)) for n, d in originals.items()}
        sets.append(PhotoSet(label, {f"{label.replace(' ', '')}-{n}": d for n, d in photos.items()}))
    return sets, origin


def _write_inputs(photo_set: PhotoSet, folder: Path, each: int, url: str) -> tuple[Path, list[str], list]:
    """The photos as files (the floor reads them), a properties CSV and the sandbox listings."""
    from homeshots_sandbox import Listing

    files = folder / "photos"
    files.mkdir(parents=True)
    for name, data in photo_set.photos.items():
        (files / name).write_bytes(data)
    names = sorted(photo_set.photos)
    prefix = photo_set.label.replace(" ", "")
    listings = [
        Listing(
            f"SBS{prefix}{i:05d}", f"{i + 1} Side St {prefix}", "Phoenix", "85001", names[i * each : (i + 1) * each]
        )
        for i in range(-(-len(names) // each))
    ]
    with (folder / "properties.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["address", "city", "state", "zip", "mls_listing_key"])
        writer.writerows([x.address, x.city, "AZ", x.postal_code, x.listing_key] for x in listings)
    return folder / "properties.csv", [f"{url}/photos/{n}" for n in names], listings


# --- measuring one run ----------------------------------------------------------------------------------
@dataclass
class Measure:
    leg: str
    per_core: float
    """Steady images/s per core."""
    per_free_core: float
    """Steady images/s per core left free by the other load and the photo server (what the leg could have had)."""
    e2e_per_core: float
    cpu_ms: float
    """CPU ms per image of the leg's process tree in the steady window."""
    e2e_cpu_ms: float
    busy: float
    """Share of all cores the leg kept busy in the steady window."""
    busy_left: float
    """Share of the CPU left over by the other load and the photo server that the leg kept busy."""
    other: float
    """Cores' worth of CPU the machine spent on anything else in the steady window."""
    server: float
    """Cores' worth of CPU of this process: the sandbox serving the photos (the stand-in for remote hosts)."""
    images: int


def _at(samples: list[Sample], t: float, attr: str) -> float:
    """A sampled counter linearly interpolated at time ``t``."""
    before = max((s for s in samples if s.at <= t), key=lambda s: s.at, default=samples[0])
    after = min((s for s in samples if s.at >= t), key=lambda s: s.at, default=samples[-1])
    a, b = getattr(before, attr), getattr(after, attr)
    return a if after.at == before.at else a + (b - a) * (t - before.at) / (after.at - before.at)


def measure(run: LegRun, cores: int) -> Measure:
    stamps = run.stamps
    k = int(len(stamps) * TRIM)
    lo, hi = (stamps[k], stamps[-1 - k]) if len(stamps) >= 2 else (0.0, 0.0)
    count = len(stamps) - 1 - 2 * k
    if count < 1 or hi - lo < 5 * SAMPLE_SECONDS:  # too short to sample a steady window: the whole run
        lo, hi, count = run.samples[0].at, run.samples[-1].at, max(1, len(stamps))
    window = hi - lo
    tree, busy, own = (_at(run.samples, hi, a) - _at(run.samples, lo, a) for a in ("tree_cpu", "busy", "self_cpu"))
    other, server = max(0.0, busy - tree - own) / window, own / window
    free = max(0.25, cores - other - server)
    return Measure(
        run.leg,
        count / window / cores,
        count / window / free,
        len(stamps) / run.seconds / cores,
        1000 * tree / count,
        1000 * run.cpu / max(1, len(stamps)),
        tree / window / cores,
        tree / (window * free),
        other,
        server,
        len(stamps),
    )


def compare(label: str, a: LegRun, b: LegRun) -> str:
    """Same size and format, file bytes, and mean absolute pixel difference of two legs' outputs."""
    common = sorted(set(a.outputs) & set(b.outputs))
    if not common:
        return f"  {label}: {a.leg} vs {b.leg}: no photo in common"
    sizes_differ, diffs, formats = 0, [], set()
    for name in common:
        with Image.open(a.outputs[name]) as x, Image.open(b.outputs[name]) as y:
            formats |= {x.format, y.format}
            if x.size != y.size:
                sizes_differ += 1
                continue
            px, py = (np.asarray(i.convert("RGB"), dtype=np.int16) for i in (x, y))
            diffs.append(float(np.abs(px - py).mean()))
    mean_bytes = {r.leg: statistics.mean(p.stat().st_size for p in r.outputs.values()) / 1e6 for r in (a, b)}
    return (
        f"  {label}: {a.leg} vs {b.leg} on {len(common)} photos: size differs on {sizes_differ}, formats "
        f"{'/'.join(sorted(f or '?' for f in formats))}, mean abs pixel diff "
        f"{statistics.mean(diffs) if diffs else float('nan'):.2f} (max {max(diffs, default=float('nan')):.2f}) "
        f"of 255; PNG bytes {a.leg} {mean_bytes[a.leg]:.3f} MB, {b.leg} {mean_bytes[b.leg]:.3f} MB"
    )


# --- the table ---------------------------------------------------------------------------------------------
def _spread(values: list[float], fmt: str = ".1f") -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})" if len(values) > 1 else f"{med:{fmt}}"


def summary(results: dict[str, dict[str, list[Measure]]], cores: int) -> list[str]:
    """Markdown table and ratio lines: medians with (min-max) over rounds; ratios paired round by round."""
    lines = [
        "| photos | leg | per core, images/s (steady) | per free core | per core, end to end | CPU ms/image "
        "| cores busy | busy of the free CPU | other load (cores, max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios: list[str] = []
    for label, legs in results.items():
        for leg, ms in legs.items():
            lines.append(
                f"| {label} | {leg} | {_spread([m.per_core for m in ms])} | {_spread([m.per_free_core for m in ms])} "
                f"| {_spread([m.e2e_per_core for m in ms])} "
                f"| {_spread([m.cpu_ms for m in ms], '.0f')} | {_spread([100 * m.busy for m in ms], '.0f')}% "
                f"| {_spread([100 * m.busy_left for m in ms], '.0f')}% | {max(m.other for m in ms):.2f} |"
            )
        hs = legs.get("homeshots", [])
        for other, goal in TARGETS.items():
            paired = [h.per_core / o.per_core for h, o in zip(hs, legs.get(other, []), strict=False)]
            free = [h.per_free_core / o.per_free_core for h, o in zip(hs, legs.get(other, []), strict=False)]
            by_cpu = [o.cpu_ms / h.cpu_ms for h, o in zip(hs, legs.get(other, []), strict=False)]
            if paired:
                met = "met" if statistics.median(paired) >= goal else "NOT met"
                ratios.append(
                    f"{label}: homeshots/{other} per core {_spread(paired, '.2f')}, goal >= {goal}: {met}; "
                    f"per free core {_spread(free, '.2f')}; per CPU second {_spread(by_cpu, '.2f')}"
                )
        if hs:
            busy = statistics.median(m.busy for m in hs)
            left = statistics.median(m.busy_left for m in hs)
            ratios.append(
                f"{label}: homeshots kept {100 * busy:.0f}% of {cores} cores busy ({100 * left:.0f}% of the CPU the "
                f"other load and the photo server left free), goal >= {100 * BUSY_TARGET:.0f}%: "
                f"{'met' if busy >= BUSY_TARGET else 'NOT met'}"
            )
    return [*lines, "", *ratios]


def _row(label: str, m: Measure, note: str) -> str:
    return (
        f"  {label:>9} {m.leg:<12} {m.images:4d} images: {m.per_core:6.2f} img/s per core steady "
        f"({m.per_free_core:.2f} per free core), "
        f"{m.e2e_per_core:6.2f} end to end; CPU {m.cpu_ms:5.0f} ms/image ({m.e2e_cpu_ms:.0f} with start-up); "
        f"cores busy {100 * m.busy:3.0f}% ({100 * m.busy_left:.0f}% of the free CPU); "
        f"other load {m.other:.2f} cores, photo server {m.server:.2f}" + (f"; {note}" if note else "")
    )


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> dict[str, dict[str, list[Measure]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--images", type=int, default=120, help="photos per set (default 120)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--sizes", default="3000,original", help="sets: longest side in px, or 'original'")
    parser.add_argument("--each", type=int, default=4, help="photos per listing for homeshots (default 4)")
    parser.add_argument("--legs", default=",".join(LEGS), help=f"comma list of {','.join(LEGS)}")
    parser.add_argument("--photos", type=Path, default=DATASET, help=f"folder of JPEGs (default {DATASET})")
    parser.add_argument("--generated", action="store_true", help="generated photos even when the data set exists")
    parser.add_argument("--img2dataset-venv", type=Path, default=DEFAULT_IMG2DATASET_VENV)
    parser.add_argument("--no-install", action="store_true", help="skip img2dataset when it is not installed")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for homeshots (levers)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)  # unwind, so that the leg running now is stopped too
    from homeshots_sandbox import SandboxServer
    from homeshots_sandbox.server import _Handler

    _Handler.disable_nagle_algorithm = True  # as benchmarks.throughput: no 40 ms delayed-ACK stall per API call
    cores = os.cpu_count() or 1
    legs = [x for x in args.legs.split(",") if x]
    extra = dict(kv.split("=", 1) for kv in args.env)
    exe = img2dataset_exe(args.img2dataset_venv, install=not args.no_install) if "img2dataset" in legs else None
    if "img2dataset" in legs and exe is None:
        print(f"img2dataset: not installed in {args.img2dataset_venv}, leg skipped (--no-install)")
        legs.remove("img2dataset")
    sets, origin = photo_sets(args.images, args.sizes.split(","), None if args.generated else args.photos)
    load = os.getloadavg()
    print(
        f"machine: {cores} cores, load average {load[0]:.2f} at start; photos: {origin}; sets: "
        f"{', '.join(s.label for s in sets)}; homeshots env: {extra or 'defaults'}",
        flush=True,
    )
    results: dict[str, dict[str, list[Measure]]] = {s.label: {leg: [] for leg in legs} for s in sets}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="homeshots-sbs-")))
        sandbox = stack.enter_context(SandboxServer([], {}, services=["mls"]))
        inputs = {}
        all_listings, all_photos = [], {}
        for s in sets:
            csv_path, urls, listings = _write_inputs(
                s, tmp / "inputs" / s.label.replace(" ", ""), args.each, sandbox.base_url
            )
            inputs[s.label] = (csv_path, urls)
            all_listings += listings
            all_photos |= s.photos
        sandbox.listings, sandbox.photos = all_listings, all_photos
        for r in range(args.rounds):
            order = legs[r % len(legs) :] + legs[: r % len(legs)]
            print(f"\nround {r + 1}: {', '.join(order)}", flush=True)
            for s in sets:
                csv_path, urls = inputs[s.label]
                runs: dict[str, LegRun] = {}
                for leg in order:
                    work = tmp / f"r{r}" / s.label.replace(" ", "") / leg
                    work.mkdir(parents=True)
                    if leg == "homeshots":
                        runs[leg] = homeshots_leg(csv_path, work, sandbox.env(), extra, len(urls))
                    elif leg == "img2dataset":
                        assert exe is not None
                        runs[leg] = img2dataset_leg(exe, urls, work, cores)
                    else:
                        runs[leg] = floor_leg(csv_path.parent / "photos", work, cores)
                    m = measure(runs[leg], cores)
                    results[s.label][leg].append(m)
                    print(_row(s.label, m, runs[leg].note), flush=True)
                if r == 0 and "homeshots" in runs:
                    for other in ("img2dataset", "floor"):
                        if other in runs:
                            print(compare(s.label, runs["homeshots"], runs[other]), flush=True)
    print("\nside by side, per core (median and min-max over rounds):")
    for line in summary(results, cores):
        print(line)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
