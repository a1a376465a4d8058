"""Commands that start, finish and follow runs: backfill, nightly, resume, status, runs, forget."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from homeshots.core.errors import InputError
from homeshots.core.settings import SOURCES, Settings, get_settings
from homeshots.ops.run_view import console, err, show_run, wait_for_run
from homeshots.ops.session import open_session
from homeshots.storage import open_store
from managers import keys
from managers.run_archive import RunArchive
from managers.run_manager import RunManager
from tasks.nightly import budget_note, nightly_run_id, submit_nightly
from tasks.reconcile import reconcile
from tasks.submission import default_run_id, submit_backfill

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _sources(settings: Settings, sources: str | None, wait: bool) -> list[str]:
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else settings.sources
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise click.BadParameter(f"unknown source(s) {unknown}; known: {list(SOURCES)}", param_hint="--sources")
    problems = settings.source_problems(chosen)
    if problems:
        raise click.UsageError("; ".join(problems))
    if not wait and not settings.redis_url:
        raise click.UsageError("--no-wait needs HOMESHOTS_REDIS_URL: embedded workers stop when this command ends")
    return chosen


@click.command()
@click.argument("properties_file", type=FILE)
@click.option("--sources", help=f"Comma-separated sources (default: all enabled; known: {','.join(SOURCES)}).")
@click.option("--resume/--no-resume", default=True, help="Skip properties this run already completed.")
@click.option("--run-id", help="Run id (default: a digest of the file and sources, so re-running resumes).")
@click.option("--wait/--no-wait", default=True, help="Show progress until the run result is written.")
@click.option("--skip-bad-rows", is_flag=True, help="Record bad rows in the run result instead of stopping.")
def backfill(
    properties_file: Path, sources: str | None, resume: bool, run_id: str | None, wait: bool, skip_bad_rows: bool
) -> None:
    """Collect every photo of PROPERTIES_FILE (CSV or JSON lines), as windows of Celery chords."""
    chosen = _sources(get_settings(), sources, wait)
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
        wait_for_run(session, run_id)
        show_run(session.client, run_id, as_json=False)


@click.command()
@click.argument("properties_file", type=FILE)
@click.option("--hours", type=click.FloatRange(0.001, 24), help="Length of the night (default HOMESHOTS_NIGHT_HOURS).")
@click.option("--sources", help="Comma-separated sources (default: all enabled).")
@click.option("--run-id", help="Run id (default: nightly-YYYY-MM-DD, UTC).")
@click.option("--wait/--no-wait", default=True, help="Show progress until the run result is written.")
@click.option("--skip-bad-rows", is_flag=True, help="Record bad rows in the run result instead of stopping.")
def nightly(
    properties_file: Path, hours: float | None, sources: str | None, run_id: str | None, wait: bool, skip_bad_rows: bool
) -> None:
    """Tonight's run: only what changed since everything collected before, within each source's budget."""
    chosen = _sources(get_settings(), sources, wait)
    run_id = run_id or nightly_run_id()
    with open_session(workers=True) as session:
        if RunManager(session.client, run_id).meta().get("status") == "finished":
            console.print(f"run {run_id} already finished tonight; `homeshots status {run_id}` shows it")
            return
        try:
            night = submit_nightly(
                session.client,
                session.settings,
                properties_file,
                run_id=run_id,
                sources=chosen,
                hours=hours,
                skip_bad_rows=skip_bad_rows,
            )
        except InputError as exc:
            err.print(f"[red]bad input:[/red] {exc}")
            sys.exit(2)
        sub, replication = night.submission, night.replication
        console.print(
            f"run [bold]{run_id}[/bold]: {sub.total_properties} properties, {sub.to_process} to visit "
            f"in {sub.windows} window(s), {sub.deferred} deferred to a later night; MLS replication "
            f"{replication.status}" + (f" ({replication.changed} changed)" if replication.since else "")
        )
        for line in budget_note(night.plan):
            console.print(f"  {line}")
        if not wait:
            console.print(f"submitted; follow it with: homeshots status {run_id}")
            return
        wait_for_run(session, run_id)
        show_run(session.client, run_id, as_json=False)


@click.command()
@click.argument("run_id")
@click.option("--wait/--no-wait", default=True, help="Show progress until the run result is written.")
def resume(run_id: str, wait: bool) -> None:
    """Finish RUN_ID now: re-send its lost tasks and chunk callbacks, finalize if due."""
    if not wait and not get_settings().redis_url:
        raise click.UsageError("--no-wait needs HOMESHOTS_REDIS_URL: embedded workers stop when this command ends")
    with open_session(workers=True) as session:
        fixed = reconcile(session.client, run_id, force=True)
        console.print(
            f"run {run_id}: re-sent {len(fixed.tasks_resent)} lane tasks, callbacks of chunks "
            f"{', '.join(fixed.callbacks_sent) or '-'}" + (", finalized" if fixed.finalized else "")
        )
        if wait:
            wait_for_run(session, run_id)
            show_run(session.client, run_id, as_json=False)


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def status(run_id: str, as_json: bool) -> None:
    """Print RUN_ID's result (or its progress so far), from any machine."""
    with open_session(workers=False) as session:
        show_run(session.client, run_id, as_json=as_json)


@click.command()
@click.option("--limit", default=30, show_default=True, help="The latest runs shown.")
def runs(limit: int) -> None:
    """List runs, newest first: status, properties, photos stored and changed."""
    table = Table(title="runs")
    for column in (
        "run",
        "status",
        "started",
        "properties",
        "completed",
        "failed",
        "stored",
        "new",
        "changed",
        "removed",
        "records",
    ):
        table.add_column(column, justify="left" if column in ("run", "status", "started", "records") else "right")
    with open_session(workers=False) as session:
        for run_id in session.client.zrevrange(keys.RUNS, 0, limit - 1):
            manager = RunManager(session.client, run_id)
            meta, result = manager.meta(), manager.result()
            table.add_row(
                run_id,
                meta.get("status", "?"),
                (meta.get("started_at") or "")[:19],
                *(
                    str(result.get(k, 0))
                    for k in (
                        "total_properties",
                        "properties_completed",
                        "properties_failed",
                        "images_stored",
                        "photos_new",
                        "photos_changed",
                        "photos_removed",
                    )
                ),
                meta.get("records", "redis"),
            )
    console.print(table)


@click.command()
@click.argument("run_id")
def forget(run_id: str) -> None:
    """Remove RUN_ID from Redis and its records from the store (its photos stay: they are shared)."""
    with open_session(workers=False) as session:
        if not RunManager(session.client, run_id).exists():
            raise click.ClickException(f"no run {run_id!r} in this Redis")
        RunArchive(session.client, open_store(session.settings)).forget(run_id)
    console.print(f"run {run_id} forgotten")
