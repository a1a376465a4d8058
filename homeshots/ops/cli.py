"""The ``homeshots`` command: backfill, resume, status, manifest, snapshot, restore, report, flower, metrics."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from homeshots.core.errors import ConfigError, InputError
from homeshots.core.settings import SOURCES, get_settings
from homeshots.ops.display import RateColumn, print_failures, print_result, progress_line
from homeshots.ops.flower import run_flower
from homeshots.ops.metrics import serve_metrics
from homeshots.ops.report import ReportBuilder
from homeshots.ops.session import Session, open_session
from homeshots.storage import open_store
from managers.connection import connect
from managers.deduplicator import ImageDeduplicator
from managers.extraction_stats import counter_key
from managers.manifest_manager import ManifestManager
from managers.run_manager import RunManager
from managers.snapshot_manager import SnapshotManager
from managers.state_manager import StateManager
from tasks.reconcile import reconcile
from tasks.submission import default_run_id, submit_backfill

STORED = counter_key("run", "images_stored")
console = Console(width=None if sys.stdout.isatty() else 132)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 132)


@click.group()
def main() -> None:
    """Collect, deduplicate, standardize and store real-estate photos on a Celery cluster."""


@main.command()
@click.argument("properties_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sources", help=f"Comma-separated sources (default: all enabled; known: {','.join(SOURCES)}).")
@click.option("--resume/--no-resume", default=True, help="Skip properties this run already completed.")
@click.option("--run-id", help="Run id (default: derived from the file and sources, so re-running resumes).")
@click.option("--wait/--no-wait", default=True, help="Show progress until the run result is written.")
@click.option("--skip-bad-rows", is_flag=True, help="Record bad rows in the run result instead of stopping.")
def backfill(
    properties_file: Path, sources: str | None, resume: bool, run_id: str | None, wait: bool, skip_bad_rows: bool
) -> None:
    """Submit a backfill of PROPERTIES_FILE (CSV or JSON lines) as windows of Celery chords."""

    settings = get_settings()
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else settings.sources
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise click.BadParameter(f"unknown source(s) {unknown}; known: {list(SOURCES)}", param_hint="--sources")
    problems = settings.source_problems(chosen)
    if problems:
        raise click.UsageError("; ".join(problems))
    if not wait and not settings.redis_url:
        raise click.UsageError("--no-wait needs HOMESHOTS_REDIS_URL: embedded workers stop when this command ends")
    run_id = run_id or default_run_id(properties_file, chosen)
    with open_session(workers=True) as session:
        try:
            sub = submit_backfill(
                session.client,
                session.settings,
                properties_file,
                run_id=run_id,
                sources=chosen,
                resume=resume,
                skip_bad_rows=skip_bad_rows,
            )
        except InputError as exc:
            err.print(f"[red]bad input:[/red] {exc}")
            sys.exit(2)
        console.print(
            f"run [bold]{run_id}[/bold]: {sub.total_properties} properties, {sub.skipped} already "
            f"completed, {sub.to_process} to process in {sub.windows} window(s)"
            + (f", {len(sub.bad_rows)} bad row(s) skipped" if sub.bad_rows else "")
        )
        if not wait:
            console.print(f"submitted; follow it with: homeshots status {run_id}")
            return
        _wait(session, run_id)
        _show(session.client, run_id, as_json=False)


def _wait(session: Session, run_id: str) -> None:
    """Progress bar until the run result is written; reconcile when nothing moves for a while."""

    client, workers = session.client, session.workers
    runs, state = RunManager(client, run_id), StateManager(client, run_id)
    total = int(runs.meta().get("total_properties", 0))
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
            progress.update(
                bar,
                completed=min(total, summary.completed + summary.failed),
                detail=f"failed {summary.failed}, images stored {stored}",
            )
            marker = (summary.completed, summary.failed, len(runs.done_windows(runs.generation())))
            if marker != last_progress:
                last_progress, last_change = marker, time.monotonic()
            elif time.monotonic() - last_change > session.settings.stall_seconds:
                fixed = reconcile(client, run_id)
                if fixed.anything:
                    progress.console.print(
                        f"no progress for {session.settings.stall_seconds:.0f}s: re-sent "
                        f"callbacks {fixed.callbacks_sent}, windows {fixed.windows_resent}"
                    )
                last_change = time.monotonic()
            if workers is not None and not workers.alive():
                raise click.ClickException("the embedded workers stopped; see homeshots-data/logs/worker.log")
            time.sleep(0.5)
        summary = state.summary()
        progress.update(
            bar,
            completed=min(total, summary.completed + summary.failed),
            detail=f"failed {summary.failed}, images stored {runs.counters().get(STORED, 0)}",
        )


def _show(client: redis.Redis, run_id: str, *, as_json: bool) -> None:

    runs = RunManager(client, run_id)
    if not runs.exists():
        raise click.ClickException(f"no run {run_id!r} in this Redis")
    meta = runs.meta()
    result = runs.final_result() if meta.get("status") == "finished" else None
    result = result or runs.current_result().to_dict()
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
    print_result(console, result, status=meta.get("status", "?"), where=where)
    print_failures(console, failures)


@main.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=True, help="Show progress until the run result is written.")
def resume(run_id: str, wait: bool) -> None:
    """Finish RUN_ID: re-send lost window callbacks and vanished windows, finalize if due."""

    if not wait and not get_settings().redis_url:
        raise click.UsageError("--no-wait needs HOMESHOTS_REDIS_URL: embedded workers stop when this command ends")
    with open_session(workers=True) as session:
        fixed = reconcile(session.client, run_id)
        console.print(
            f"run {run_id}: re-sent callbacks of windows {fixed.callbacks_sent or '-'}, "
            f"windows {fixed.windows_resent or '-'}" + (", finalized" if fixed.finalized else "")
        )
        if wait:
            _wait(session, run_id)
            _show(session.client, run_id, as_json=False)


@main.command()
def snapshot() -> None:
    """Write a full snapshot of every run and the hash index to the store (metadata/snapshots/)."""

    with open_session(workers=False) as session:
        key = SnapshotManager(session.client, open_store(session.settings)).write_full()
        console.print(f"snapshot written: {open_store(session.settings).location(key)}")


@main.command()
@click.option("--force", is_flag=True, help="Restore even though this Redis is not empty.")
def restore(force: bool) -> None:
    """Rebuild runs, state, manifests and the hash index from the store's snapshots into an empty Redis."""

    with open_session(workers=False) as session:
        if session.client.dbsize() and not force:
            raise click.ClickException("this Redis is not empty; restore into an empty one (or --force)")
        s = session.settings
        counts = SnapshotManager(session.client, open_store(s)).restore(
            ImageDeduplicator(session.client, s.dedup_threshold, s.dedup_dhash_threshold)
        )
        console.print(
            f"restored {counts['runs']} run records, {counts['properties']} property records and "
            f"{counts['images']} index records from {counts['files']} snapshot files"
        )


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(run_id: str, as_json: bool) -> None:
    """Print RUN_ID's result (or its progress so far), from any machine."""

    with open_session(workers=False) as session:
        _show(session.client, run_id, as_json=as_json)


@main.command()
@click.argument("run_id")
@click.option("--failures", is_flag=True, help="Write the manifest of failures (properties and images) instead.")
def manifest(run_id: str, failures: bool) -> None:
    """Write RUN_ID's manifest (one JSON object per image row) to stdout."""

    with open_session(workers=False) as session:
        if not RunManager(session.client, run_id).exists():
            raise click.ClickException(f"no run {run_id!r} in this Redis")
        rows = ManifestManager(session.client, run_id)
        if not failures:
            for entry in rows.entries():
                click.echo(json.dumps(entry.to_dict(), sort_keys=True))
            return
        for pid, reason in StateManager(session.client, run_id).failures():
            click.echo(json.dumps({"property_id": pid, "scope": "property"} | reason, sort_keys=True))
        for row in rows.failures():
            click.echo(json.dumps({"scope": "image"} | row, sort_keys=True))


@main.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Listen address (0.0.0.0 to expose it).")
@click.option("--port", default=5555, show_default=True)
def flower(address: str, port: int) -> None:
    """Flower for this cluster; refuses to start without HOMESHOTS_FLOWER_BASIC_AUTH or OAuth settings."""

    sys.exit(run_flower(get_settings(), address, port))


@main.command()
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", default=9808, show_default=True)
def metrics(address: str, port: int) -> None:
    """Serve Prometheus metrics: run progress, images by source, queue depth, rate-limit waits."""

    settings = get_settings()
    if not settings.redis_url:
        raise click.UsageError("the metrics exporter needs HOMESHOTS_REDIS_URL")
    console.print(f"metrics on http://{address}:{port}/metrics")
    serve_metrics(connect(settings.redis_url), settings, address, port)


@main.command()
@click.argument("run_id")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"), show_default=True
)
@click.option("--limit", default=200, show_default=True, help="Properties shown in the contact sheets.")
def report(run_id: str, output: Path, limit: int) -> None:
    """Write a self-contained HTML report of RUN_ID: result, failures, contact sheets, merged duplicates."""

    with open_session(workers=False) as session:
        if not RunManager(session.client, run_id).exists():
            raise click.ClickException(f"no run {run_id!r} in this Redis")
        page = ReportBuilder(session.client, open_store(session.settings), run_id, max_properties=limit).build()
    output.write_text(page, encoding="utf-8")
    console.print(f"report written: {output.resolve()} ({len(page) // 1024} KiB)")


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run() -> None:
    # SIGTERM unwinds like Ctrl-C, so an embedded Redis and workers are stopped cleanly.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
