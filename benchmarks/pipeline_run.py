"""Running the real pipeline for a benchmark: private Redis, sandbox, Celery workers, a timed run.

``benchmarks.throughput`` measures with it; this module also runs as the submitting helper process
(``python -m benchmarks.pipeline_run --submit CSV --run-id ID``) so the submitter's CPU is its own.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.proc_cpu import busy_seconds, tree_cpu

ROOT = Path(__file__).resolve().parent.parent
MLS_LONGEST = 3000
"""Longest side of the benchmark photos: MLS-size originals."""
WARMUP_SEED = 900_000
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Png:
    """PNG encoder settings: ``LEVEL:STRATEGY`` for Pillow's zlib encoder (``HOMESHOTS_PNG_COMPRESS_LEVEL``,
    ``HOMESHOTS_PNG_STRATEGY``), or ``LEVEL:isal`` for the ISA-L writer (``HOMESHOTS_PNG_ENCODER=isal``)."""

    level: int
    strategy: str

    @classmethod
    def parse(cls, text: str) -> Png:
        level, _, strategy = text.partition(":")
        return cls(int(level), strategy or "default")

    @property
    def encoder(self) -> str:
        return "isal" if self.strategy == "isal" else "pillow"

    def __str__(self) -> str:
        return f"PNG ISA-L level {self.level}" if self.encoder == "isal" else f"PNG level {self.level} {self.strategy}"

    def env(self) -> dict[str, str]:
        strategy = "rle" if self.encoder == "isal" else self.strategy
        return {
            "HOMESHOTS_PNG_COMPRESS_LEVEL": str(self.level),
            "HOMESHOTS_PNG_STRATEGY": strategy,
            "HOMESHOTS_PNG_ENCODER": self.encoder,
        }


# --- the whole pipeline ---------------------------------------------------------------------------------
@dataclass
class PipelineResult:
    label: str
    images: int
    seconds: float
    worker_cpu: float
    pool_cpu: float
    """CPU of the worker's pool processes (children); the rest of ``worker_cpu`` is its main process."""
    redis_cpu: float
    sandbox_cpu: float
    commands: dict[str, int]
    usec: dict[str, int]
    """Redis' own time per command (a script's time includes the commands it calls)."""
    net_bytes: int
    foreign_cpu: float
    """CPU seconds the machine spent on anything else during the run (other users' load: noise)."""
    counters: dict[str, int] = field(default_factory=dict)
    reads: int = 0
    """Requests the server read off its sockets (``total_reads_processed``): round trips, a pipeline counts once."""

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())


def _redis_snapshot(client: object) -> tuple[dict[str, int], dict[str, int], int, float, int]:
    """(calls and microseconds per command, network bytes in + out, CPU seconds, socket reads) of the redis-server."""
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    usec = {name.removeprefix("cmdstat_"): int(v["usec"]) for name, v in stats.items()}
    net = client.info("stats")  # type: ignore[attr-defined]
    cpu = client.info("cpu")  # type: ignore[attr-defined]
    return (
        calls,
        usec,
        int(net["total_net_input_bytes"]) + int(net["total_net_output_bytes"]),
        float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        int(net["total_reads_processed"]),
    )


def _listings(prefix: str, photos: list[bytes], each: int) -> tuple[list, dict[str, bytes]]:
    from homeshots_sandbox import Listing

    listings, served = [], {}
    for start in range(0, len(photos), each):
        key = f"{prefix}{start // each + 1:05d}"
        names = []
        for j, data in enumerate(photos[start : start + each]):
            names.append(f"{key}_{j}.jpg")
            served[names[-1]] = data
        listings.append(Listing(key, f"{start // each + 1} {prefix} Bench St", "Phoenix", "85001", names))
    return listings, served


def _write_csv(path: Path, listings: list) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["address", "city", "state", "zip", "mls_listing_key"])
        writer.writeheader()
        for x in listings:
            writer.writerow(
                {
                    "address": x.address,
                    "city": x.city,
                    "state": "AZ",
                    "zip": x.postal_code,
                    "mls_listing_key": x.listing_key,
                }
            )
    return path


@contextlib.contextmanager
def _worker(
    env: dict[str, str], concurrency: int, pool: str, log: Path, name: str = "bench"
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "--loglevel=WARNING",
                "-P",
                pool,
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
                f"--hostname={name}@%h",
            ],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _submit(env: dict[str, str], csv_path: Path, run_id: str, timeout: float, before_go: object = None) -> dict:
    """Submit a run from a helper process (its own Celery app and settings) and wait for its end."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.pipeline_run",
            "--submit",
            str(csv_path),
            "--run-id",
            run_id,
            "--timeout",
            str(timeout),
        ],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.wait()
        raise RuntimeError("the submitting helper did not start")
    if callable(before_go):
        before_go()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    proc.wait()
    if not line.strip():
        raise RuntimeError(f"run {run_id} did not finish within {timeout:.0f}s")
    return json.loads(line)


def submit_and_wait(csv_path: str, run_id: str, timeout: float) -> None:
    """The helper: ``ready``, wait for ``go``, submit, poll the run, print one JSON line."""
    from datetime import datetime

    from celery_app.app import release_result_subscriptions
    from homeshots.core.settings import get_settings
    from managers.connection import connect
    from managers.run_manager import RunManager
    from tasks.submission import submit_backfill

    settings = get_settings()
    client = connect(settings.redis_url)
    runs = RunManager(client, run_id)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    submit_backfill(client, settings, Path(csv_path), run_id=run_id, sources=["mls"], resume=False, skip_bad_rows=False)
    polls, deadline = 0, time.monotonic() + timeout
    while True:
        polls += 1
        if client.hget(runs.meta_key, "status") == "finished":
            break
        if time.monotonic() > deadline:
            print("", flush=True)
            return
        time.sleep(POLL_SECONDS)
    finished = datetime.fromisoformat(client.hget(runs.meta_key, "finished_at")).timestamp()
    release_result_subscriptions()
    print(json.dumps({"seconds": finished - started, "polls": polls, "counters": runs.counters()}), flush=True)


def pipeline(
    label: str,
    photos: list[bytes],
    *,
    each: int,
    png: Png,
    concurrency: int = 1,
    latency: float = 0.0,
    pool: str = "prefork",
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> PipelineResult:
    """One measured run against ``workers`` worker commands (``-P pool --concurrency=C`` each)."""
    from homeshots_sandbox import SandboxServer, generate_photo
    from homeshots_sandbox.server import _Handler

    from benchmarks.redis_server import private_redis

    _Handler.disable_nagle_algorithm = True  # see the module docstring: ~40 ms per MLS query otherwise
    warm = [generate_photo(WARMUP_SEED + i, size=(MLS_LONGEST, 2000)) for i in range(each * 2 * concurrency * workers)]
    warm_listings, warm_photos = _listings("W", warm, each)
    listings, served = _listings("B", photos, each)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="homeshots-bench-")))
        client = stack.enter_context(private_redis())
        port = client.connection_pool.connection_kwargs["port"]
        sandbox = stack.enter_context(
            SandboxServer(listings + warm_listings, served | warm_photos, services=["mls"], latency=latency)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOMESHOTS_", "AWS_"))}
        env |= (
            sandbox.env()
            | {
                "HOMESHOTS_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "HOMESHOTS_STORE_URL": f"file://{tmp / 'store'}",
                "HOMESHOTS_EMBEDDED_DIR": str(tmp / "embedded"),
                "HOMESHOTS_MLS_RATE": "1000",  # politeness is not what is measured here
                "PYTHONPATH": str(ROOT),
            }
            | png.env()
            | (extra_env or {})
        )
        procs = [
            stack.enter_context(_worker(env, concurrency, pool, tmp / f"worker{i}.log", f"bench{i}"))
            for i in range(workers)
        ]
        timeout = 60 + 2 * len(photos) * max(1, png.level)
        _submit(env, _write_csv(tmp / "warm.csv", warm_listings), "bench-warmup", timeout)
        before: dict[str, object] = {}

        def snapshot() -> None:
            before["worker"] = sum(tree_cpu(p.pid) for p in procs)
            before["pool"] = sum(tree_cpu(p.pid, children_only=True) for p in procs)
            before["redis"] = _redis_snapshot(client)
            before["self"] = time.process_time()
            before["busy"] = busy_seconds()

        out = _submit(env, _write_csv(tmp / "bench.csv", listings), "bench", timeout, snapshot)
        self_cpu = time.process_time() - before["self"]  # type: ignore[operator]
        busy = busy_seconds() - before["busy"]  # type: ignore[operator]
        worker_cpu = sum(tree_cpu(p.pid) for p in procs) - before["worker"]  # type: ignore[operator]
        pool_cpu = sum(tree_cpu(p.pid, children_only=True) for p in procs) - before["pool"]  # type: ignore[operator]
        calls0, usec0, net0, rcpu0, reads0 = before["redis"]  # type: ignore[misc]
        calls1, usec1, net1, rcpu1, reads1 = _redis_snapshot(client)
        commands = {k: v - calls0.get(k, 0) for k, v in calls1.items() if v - calls0.get(k, 0) > 0}
        usec = {k: v - usec0.get(k, 0) for k, v in usec1.items() if v - usec0.get(k, 0) > 0}
        # The helper's status polls and our own INFO calls are not pipeline work.
        commands["hget"] = commands.get("hget", 0) - out["polls"] - 1
        commands["info"] = commands.get("info", 0) - 3
        commands = {k: v for k, v in commands.items() if v > 0}
        ours = worker_cpu + (rcpu1 - rcpu0) + self_cpu
        return PipelineResult(
            label,
            len(photos),
            out["seconds"],
            worker_cpu,
            pool_cpu,
            rcpu1 - rcpu0,
            self_cpu,
            commands,
            usec,
            net1 - net0,
            max(0.0, busy - ours),
            out["counters"],
            reads1 - reads0 - out["polls"] - 4,
        )


if __name__ == "__main__":
    import argparse as _argparse

    _parser = _argparse.ArgumentParser()
    _parser.add_argument("--submit", required=True)
    _parser.add_argument("--run-id", required=True)
    _parser.add_argument("--timeout", type=float, default=600)
    _args = _parser.parse_args()
    submit_and_wait(_args.submit, _args.run_id, _args.timeout)
