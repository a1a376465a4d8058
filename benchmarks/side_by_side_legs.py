"""The three legs of ``benchmarks.side_by_side`` and how one run of a leg is watched.

Each leg is a command run to its end while a sampler records, every ``SAMPLE_SECONDS``, the CPU
time of the command's process tree, the CPU the whole machine spent busy, and this process's own
CPU (the sandbox serving the photos, the sampler). Each leg leaves one time stamp per finished
image (an output file's mtime, or the floor's own clock), so every leg is measured the same way.

* ``homeshots``: the CLI (``python -m homeshots backfill``) on the embedded default (its own
  redis-server and Celery workers) against the sandbox's MLS serving the photos on 127.0.0.1.
* ``img2dataset``: its CLI from its own virtualenv (never the project's), fed the same photo URLs.
* ``floor``: one process per core doing Pillow decode with draft, EXIF transpose, LANCZOS and PNG
  level 1 ``rle``, nothing else (``python -m benchmarks.side_by_side_legs FOLDER INDEX COUNT OUT``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.proc_cpu import busy_seconds, tree_cpu

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SECONDS = 0.2
IMG2DATASET_VERSION = "1.47.0"
DEFAULT_IMG2DATASET_VENV = Path.home() / ".cache" / "homeshots-bench" / f"img2dataset-{IMG2DATASET_VERSION}"


# --- watching a command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    at: float
    """``time.time()``: the clock file mtimes use."""
    tree_cpu: float
    busy: float
    self_cpu: float


@dataclass
class LegRun:
    """One run of one leg: its finish stamps, its CPU samples, and what it wrote."""

    leg: str
    images: int
    stamps: list[float]
    samples: list[Sample]
    seconds: float
    """Command start to exit (start-up included)."""
    cpu: float
    """CPU seconds of the whole command tree, start-up included (``RUSAGE_CHILDREN``)."""
    outputs: dict[str, Path] = field(default_factory=dict)
    """Photo name -> the PNG this leg made of it."""
    note: str = ""


def watch(leg: str, command: list[str], env: dict[str, str], log: Path, images: int) -> LegRun:
    """Run ``command`` to its end, sampling CPU; stamps and outputs are filled in by the leg."""
    samples: list[Sample] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    stop = threading.Event()

    def sample() -> None:
        while True:
            samples.append(Sample(time.time(), tree_cpu(proc.pid, reaped=True), busy_seconds(), time.process_time()))
            if stop.wait(SAMPLE_SECONDS):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: SIGTERM lets the homeshots CLI stop its Redis and workers
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stop.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = time.monotonic() - started
    samples.append(Sample(time.time(), samples[-1].tree_cpu, busy_seconds(), time.process_time()))
    if code != 0:
        raise RuntimeError(f"{leg} exited with {code}; see {log}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return LegRun(leg, images, [], samples, seconds, cpu)


def mtimes(paths: list[Path]) -> list[float]:
    return sorted(p.stat().st_mtime for p in paths)


def clean_env() -> dict[str, str]:
    """This environment without any homeshots or AWS setting that could point a leg elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HOMESHOTS_", "AWS_"))}


# --- (a) homeshots through its CLI --------------------------------------------------------------------
def homeshots_leg(
    csv_path: Path, work: Path, sandbox_env: dict[str, str], extra: dict[str, str], images: int
) -> LegRun:
    """``homeshots backfill`` on the embedded default, in a fresh data folder; outputs from its manifest."""
    env = clean_env() | sandbox_env
    env |= {
        "HOMESHOTS_EMBEDDED_DIR": str(work / "data"),
        "HOMESHOTS_STORE_URL": f"file://{work / 'data'}",
        "HOMESHOTS_MLS_RATE": "1000",  # politeness towards a local fake is not what is measured
        "PYTHONPATH": str(ROOT),
    } | extra
    run = watch(
        "homeshots",
        [sys.executable, "-m", "homeshots", "backfill", str(csv_path), "--run-id", "side-by-side"],
        env,
        work / "homeshots.log",
        images,
    )
    store = work / "data"
    # One file per image: its processed PNG, or the thumbnail a merged copy leaves.
    run.stamps = mtimes([*store.glob("processed/*/*"), *store.glob("thumbs/*/*")])
    manifest = subprocess.run(
        [sys.executable, "-m", "homeshots", "manifest", "side-by-side"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    merged = 0
    for line in manifest.splitlines():
        row = json.loads(line)
        if row.get("duplicate_of"):
            merged += 1
            continue
        if row.get("processed_key"):
            run.outputs[row["source_url"].rsplit("/", 1)[-1]] = store / row["processed_key"]
    run.note = f"{merged} merged as copies" if merged else ""
    return run


# --- (b) img2dataset in its own virtualenv ------------------------------------------------------------------
def img2dataset_exe(venv: Path, install: bool) -> Path | None:
    """img2dataset's command in ``venv``, installed there first when ``install`` (never in this venv)."""
    exe = venv / "bin" / "img2dataset"
    if exe.exists() or not install:
        return exe if exe.exists() else None
    print(f"installing img2dataset {IMG2DATASET_VERSION} into {venv} (once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"img2dataset=={IMG2DATASET_VERSION}"], check=True)
    return exe


def img2dataset_leg(exe: Path, urls: list[str], work: Path, processes: int) -> LegRun:
    """Same output as homeshots: longest side 1024 (never enlarged), PNG level 1, one file per image."""
    url_list = work / "urls.txt"
    url_list.write_text("\n".join(urls) + "\n")
    out = work / "img2dataset"
    # Its default shard (10,000 URLs) would give all of them to one process: 4 shards per process.
    per_shard = max(1, -(-len(urls) // (4 * processes)))
    command = [
        str(exe),
        f"--url_list={url_list}",
        "--input_format=txt",
        f"--output_folder={out}",
        f"--processes_count={processes}",
        "--resize_mode=keep_ratio_largest",
        "--image_size=1024",
        "--resize_only_if_bigger=True",  # homeshots never enlarges: same output sizes
        "--encode_format=png",
        "--encode_quality=1",
        "--output_format=files",
        f"--number_sample_per_shard={per_shard}",
    ]
    env = clean_env() | {"NO_ALBUMENTATIONS_UPDATE": "1"}
    env.pop("PYTHONPATH", None)
    run = watch("img2dataset", command, env, work / "img2dataset.log", len(urls))
    pngs = sorted(out.glob("*/*.png"))
    run.stamps = mtimes(pngs)
    for png in pngs:
        meta = json.loads(png.with_suffix(".json").read_text())
        run.outputs[meta["url"].rsplit("/", 1)[-1]] = png
    return run


# --- (c) the bare floor --------------------------------------------------------------------------------------
def floor_leg(folder: Path, work: Path, processes: int) -> LegRun:
    """``processes`` floor workers, each on every ``processes``-th photo of ``folder``."""
    out = work / "floor"
    out.mkdir(parents=True, exist_ok=True)
    script = (
        "import subprocess, sys\n"
        "procs = [subprocess.Popen([sys.executable, '-m', 'benchmarks.side_by_side_legs', *sys.argv[1:4], str(i), "
        "sys.argv[4]]) for i in range(int(sys.argv[4]))]\n"
        "sys.exit(max(p.wait() for p in procs))\n"
    )
    images = len(list(folder.iterdir()))
    command = [sys.executable, "-c", script, str(folder), str(out), str(out / "stamps"), str(processes)]
    env = clean_env() | {"PYTHONPATH": str(ROOT)}
    run = watch("floor", command, env, work / "floor.log", images)
    run.stamps = sorted(float(x) for p in out.glob("stamps.*") for x in p.read_text().split())
    run.outputs = {p.stem: p for p in out.glob("*.png")}  # "<photo name>.png"
    return run


def floor_worker(folder: Path, out: Path, stamps: Path, index: int, count: int) -> None:
    """Decode with draft, EXIF transpose, LANCZOS to 1024, PNG level 1 ``rle``; files written after timing."""
    from PIL import Image, ImageOps

    names = sorted(p.name for p in folder.iterdir())[index::count]
    made: list[tuple[str, bytes]] = []
    times: list[float] = []
    for name in names:
        data = (folder / name).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            longest = max(w, h)
            if longest > 1024:
                im.draft("RGB", (-(-w * 1024 // longest), -(-h * 1024 // longest)))
            im.load()
            decoded = im.size
            im = ImageOps.exif_transpose(im)
            if im.size != decoded:
                w, h = h, w
            # The target from the upright source size, rounded as homeshots rounds it.
            size = (max(1, round(w * 1024 / longest)), max(1, round(h * 1024 / longest))) if longest > 1024 else (w, h)
            if im.mode != "RGB":
                im = im.convert("RGB")
            if im.size != size:
                im = im.resize(size, Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, "PNG", compress_level=1, compress_type=3)  # zlib Z_RLE
        made.append((name, buf.getvalue()))
        times.append(time.time())
    for name, png in made:
        (out / f"{name}.png").write_bytes(png)
    stamps.with_name(f"{stamps.name}.{index}").write_text(" ".join(f"{t:.6f}" for t in times))


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        floor_worker(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
