"""Following a run from the CLI: the progress bar while it runs, the result tables once it is done."""

from __future__ import annotations

import json
import sys
import time

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from homeshots.core.settings import get_settings
from homeshots.ops.display import RateColumn, print_failures, print_night, print_result, progress_line
from homeshots.ops.session import Session
from homeshots.storage import open_store
from managers.extraction_stats import counter_key
from managers.run_manager import RunManager
from managers.state_manager import StateManager
from tasks.reconcile import reconcile

STORED = counter_key("run", "images_stored")
console = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132)


def wait_for_run(session: Session, run_id: str) -> None:
    """Progress bar until the run result is written; reconcile when nothing moves for a while."""
    client, workers = session.client, session.workers
    runs, state = RunManager(client, run_id), StateManager(client, run_id)
    meta = runs.meta()
    total = int(meta.get("total_properties", 0)) - int(meta.get("properties_deferred", 0))
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        RateColumn(),
        TimeRemainingColumn(),
    ]
    last_progress, last_change = None, time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("properties", total=total, detail="")
        while runs.meta().get("status") != "finished":
            summary = state.summary()
            stored = runs.counters().get(STORED, 0)
            lanes = runs.lanes_done(runs.generation())
            walked = " ".join(f"{lane} {done}/{chunks}" for lane, (done, chunks) in lanes.items())
            progress.update(
                bar,
                completed=min(total, summary.completed + summary.failed),
                detail=f"failed {summary.failed}, images stored {stored}, chunks {walked}",
            )
            marker = (summary.completed, summary.failed, stored, tuple(lanes.values()))
            if marker != last_progress:
                last_progress, last_change = marker, time.monotonic()
            elif time.monotonic() - last_change > session.settings.stall_seconds:
                # The workers reconcile by themselves; this covers a cluster whose workers all died.
                fixed = reconcile(client, run_id)
                if fixed.anything:
                    progress.console.print(
                        f"no progress for {session.settings.stall_seconds:.0f}s: re-sent "
                        f"{len(fixed.tasks_resent)} tasks and callbacks of chunks {fixed.callbacks_sent or '-'}"
                    )
                last_change = time.monotonic()
            if workers is not None and not workers.alive():
                raise click.ClickException("the embedded workers stopped; see homeshots-data/logs/worker.log")
            time.sleep(0.5)
        result = runs.result()  # the final one: a finished nightly run's state sets have left Redis
        done = int(result.get("properties_completed", 0)) + int(result.get("properties_failed", 0))
        progress.update(
            bar,
            completed=min(total, done - int(result.get("properties_skipped", 0))),
            detail=f"failed {result.get('properties_failed', 0)}, images stored {result.get('images_stored', 0)}",
        )


def show_run(client: redis.Redis, run_id: str, *, as_json: bool) -> None:
    """The run's result (or its progress so far), as tables or JSON."""
    runs = RunManager(client, run_id)
    if not runs.exists():
        raise click.ClickException(f"no run {run_id!r} in this Redis")
    meta = runs.meta()
    result = runs.result()
    failures = list(StateManager(client, run_id).failures())
    if as_json:
        out = {
            "status": meta.get("status"),
            "result": result,
            "bad_rows": runs.bad_rows(),
            "failed_properties": dict(failures),
        }
        click.echo(json.dumps(out, indent=2, sort_keys=True))
        return
    where = open_store(get_settings()).location("processed")
    if meta.get("status") != "finished":
        console.print(progress_line(result, meta))
        lanes = runs.lanes_done(runs.generation())
        if lanes:
            console.print(
                "lanes: " + ", ".join(f"{lane} {done}/{total} chunks" for lane, (done, total) in lanes.items())
            )
    print_result(console, result, status=meta.get("status", "?"), where=where)
    if result.get("night"):
        print_night(console, result["night"])
    print_failures(console, failures)
