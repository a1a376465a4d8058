"""Submitting a backfill: validate the whole file, write windows to Redis, send each lane's first chunks.

Nothing is sent until every row has been read, so a bad row stops the run before any work
starts (or is recorded, with ``--skip-bad-rows``). Completed properties are skipped here in
batches (one SMISMEMBER per batch), and again by each task in case a worker finished one since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from homeshots.core.errors import ConfigError
from homeshots.core.inputs import BadRow, read_properties
from homeshots.core.models import Property
from homeshots.core.settings import Settings
from homeshots.storage import open_store
from managers import keys
from managers.run_manager import RunManager
from managers.state_manager import StateManager, chunked
from tasks.chunks import finalize_run, submit_chunk
from tasks.lanes import chunk_members, chunk_slice, plan_lanes


@dataclass(frozen=True)
class Submission:
    run_id: str
    generation: int
    total_properties: int
    skipped: int
    to_process: int
    windows: int
    bad_rows: list[dict[str, Any]]
    deferred: int = 0
    """Properties a nightly budget left for a later night."""


def default_run_id(path: Path, sources: list[str]) -> str:
    """Same file and sources -> same run id, so re-running a command resumes it."""
    digest = hashlib.sha256(",".join(sources).encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"run-{digest.hexdigest()[:12]}"


Choose = Callable[[int, Property], list[str] | None]
"""(row number among valid rows, property) -> the sources to visit it with, or None to defer it."""


def submit_backfill(
    client: redis.Redis,
    settings: Settings,
    path: Path,
    *,
    run_id: str,
    sources: list[str],
    resume: bool,
    skip_bad_rows: bool,
) -> Submission:
    """Register a full run and send each lane's first chunks; the chunks' callbacks send the rest."""
    return submit_run(
        client, settings, path, run_id=run_id, sources=sources, resume=resume, skip_bad_rows=skip_bad_rows
    )


def submit_run(
    client: redis.Redis,
    settings: Settings,
    path: Path,
    *,
    run_id: str,
    sources: list[str],
    resume: bool,
    skip_bad_rows: bool,
    choose: Choose | None = None,
    meta: dict[str, Any] | None = None,
) -> Submission:
    """Register the run (``meta`` adds to its record, e.g. a nightly plan) and send each lane's first chunks.

    ``choose`` names the sources each property is visited with; a property it defers is not sent.
    """
    if not keys.RUN_ID.match(run_id):
        raise ConfigError(f"run id {run_id!r}: use 1-100 of letters, digits and . _ : -")
    runs = RunManager(client, run_id)
    state = StateManager(client, run_id)
    generation = runs.start_submission(input_file=str(path), sources=sources, reset=not resume, extra=meta)
    bad: list[dict[str, Any]] = []
    window: list[dict[str, Any]] = []
    first: list[list[dict[str, Any]]] = []
    """The windows sent at once, kept to send them without reading back what was just written."""
    total = skipped = deferred = windows = 0
    try:
        for batch in chunked(read_properties(path, skip_bad_rows=skip_bad_rows), 1000):  # type: ignore[arg-type]
            props: list[Property] = []
            for item in batch:
                if isinstance(item, BadRow):
                    bad.append(item.to_dict())
                else:
                    props.append(item)
            start, total = total, total + len(props)
            done = state.completed_among([p.property_id for p in props]) if resume else set()
            skipped += len(done)
            for number, prop in enumerate(props, start):
                if prop.property_id in done:
                    continue
                item = prop.to_dict()
                item.pop("sources", None)  # the row's choice becomes the property's lanes below
                visit = choose(number, prop) if choose is not None else sources
                if not visit:
                    deferred += 1
                    continue
                if prop.sources is not None:
                    visit = [s for s in visit if s in prop.sources]
                    if not visit:  # the row names none of this run's sources: nothing to do here
                        skipped += 1
                        continue
                if visit != sources:
                    item["sources"] = visit
                window.append(item)
                if len(window) >= settings.window_size:
                    windows = _write(runs, generation, windows, window, first, settings.windows_in_flight)
                    window = []
        if window:
            windows = _write(runs, generation, windows, window, first, settings.windows_in_flight)
    except BaseException:
        _discard_windows(client, run_id, generation, windows)
        client.hset(runs.meta_key, "status", "rejected")
        raise
    lanes = plan_lanes(settings, sources, windows, max((len(w) for w in first), default=0))
    runs.finish_submission(
        generation,
        total_properties=total,
        skipped=skipped,
        windows=windows,
        lanes=lanes,
        in_flight=settings.windows_in_flight,
        bad_rows=bad,
        deferred=deferred,
    )
    for lane, plan in lanes.items():
        for chunk in range(min(settings.windows_in_flight, plan.chunks)):
            window = first[chunk_slice(plan, chunk)[0]]
            members = list(chunk_members(window, plan, chunk, lane, sources))
            submit_chunk(client, run_id, generation, lane, chunk, members=members)
    if windows == 0:
        finalize_run(runs, generation, open_store(settings))
    return Submission(run_id, generation, total, skipped, total - skipped - deferred, windows, bad, deferred)


def _write(
    runs: RunManager,
    generation: int,
    index: int,
    window: list[dict[str, Any]],
    first: list[list[dict[str, Any]]],
    in_flight: int,
) -> int:
    """Store window ``index`` (kept in Redis so a callback or ``homeshots resume`` can send it) and
    remember it if it is one of the first ``in_flight``; returns the next index."""
    runs.write_window(generation, index, window)
    if index < in_flight:
        first.append(window)
    return index + 1


def _discard_windows(client: redis.Redis, run_id: str, generation: int, windows: int) -> None:
    if windows:
        client.delete(*(keys.RunKeys(run_id).window(generation, i) for i in range(windows)))
