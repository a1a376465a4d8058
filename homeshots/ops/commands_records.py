"""Commands that read what was collected: manifest, photos, report; and snapshot, restore, migrate-index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from homeshots.ops.report import ReportBuilder
from homeshots.ops.run_view import console
from homeshots.ops.session import open_session
from homeshots.storage import open_store
from managers.deduplicator import ImageDeduplicator, kept_files
from managers.index_migration import legacy_index_present, migrate_legacy_index
from managers.listing_memory import ListingMemoryManager
from managers.manifest_manager import ManifestManager
from managers.run_archive import RunArchive
from managers.run_manager import RunManager
from managers.snapshot_manager import SnapshotManager
from managers.state_manager import StateManager

CHANGES = ("new", "changed", "removed")


@click.command()
@click.argument("run_id")
@click.option("--failures", is_flag=True, help="The manifest of failures (properties and images) instead.")
@click.option("--changes", is_flag=True, help="Only the photos the run found new, changed or removed.")
def manifest(run_id: str, failures: bool, changes: bool) -> None:
    """Write RUN_ID's manifest (one JSON object per image row) to stdout."""
    with open_session(workers=False) as session:
        runs = RunManager(session.client, run_id)
        if not runs.exists():
            raise click.ClickException(f"no run {run_id!r} in this Redis")
        archived = runs.meta().get("records") == "archived"
        archive = RunArchive(session.client, open_store(session.settings))
        rows: Iterator[dict[str, Any]]
        if failures:
            rows = archive.rows(run_id, "failures") if archived else _failures(session.client, run_id)
        elif archived:
            rows = _resolved(session.client, archive.rows(run_id, "manifest"))
        else:
            rows = (e.to_dict() for e in ManifestManager(session.client, run_id).entries())
        for row in rows:
            if not changes or row.get("change") in CHANGES:
                click.echo(json.dumps(row, sort_keys=True))


def _failures(client: object, run_id: str) -> Iterator[dict[str, Any]]:
    for pid, reason in StateManager(client, run_id).failures():  # type: ignore[arg-type]
        yield {"property_id": pid, "scope": "property"} | reason
    for row in ManifestManager(client, run_id).failures():  # type: ignore[arg-type]
        yield {"scope": "image"} | row


def _resolved(client: object, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Archived rows with the files their kept image has now (a larger copy may have replaced them)."""
    batch: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        files = kept_files(client, [r.get("duplicate_of") or r["sha256"] for r in batch])  # type: ignore[arg-type]
        for row in batch:
            keys = files.get(row.get("duplicate_of") or row["sha256"])
            yield row | ({"raw_key": keys[0], "processed_key": keys[1]} if keys else {})

    for row in rows:
        batch.append(row)
        if len(batch) >= 500:
            yield from flush()
            batch = []
    yield from flush()


@click.command()
@click.argument("property_id")
def photos(property_id: str) -> None:
    """The current photos of PROPERTY_ID, per source, from the listing memory (no run is scanned)."""
    with open_session(workers=False) as session:
        remembered = ListingMemoryManager(session.client).get_all(property_id)
        if not remembered:
            raise click.ClickException(f"no photos remembered for property {property_id!r}")
        shas = [p.sha256 for memory in remembered.values() for p in memory.photos]
        files = kept_files(session.client, shas)
        for source, memory in sorted(remembered.items()):
            for photo in memory.photos:
                raw_key, processed_key = files.get(photo.sha256, ("", ""))
                click.echo(
                    json.dumps(
                        {
                            "property_id": property_id,
                            "source": source,
                            "identity": photo.identity,
                            "url": photo.url or photo.identity.removeprefix("key:"),
                            "sha256": photo.sha256,
                            "processed_key": processed_key,
                            "raw_key": raw_key,
                            "seen": memory.visited,
                        },
                        sort_keys=True,
                    )
                )


@click.command()
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
        page = ReportBuilder(
            session.client,
            open_store(session.settings),
            run_id,
            max_properties=limit,
            output_dir=output.resolve().parent,
        ).build()
    output.write_text(page, encoding="utf-8")
    console.print(f"report written: {output.resolve()} ({len(page) // 1024} KiB)")


@click.command()
def snapshot() -> None:
    """Write a full snapshot of every run and the hash index to the store (metadata/snapshots/)."""
    with open_session(workers=False) as session:
        store = open_store(session.settings)
        key = SnapshotManager(session.client, store).write_full()
        console.print(f"snapshot written: {store.location(key)}")


@click.command()
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


@click.command(name="migrate-index")
def migrate_index() -> None:
    """Move a hash index of the old one-slot layout (hs:{idx}:...) into the sharded records and claim log."""
    with open_session(workers=False) as session:
        if not legacy_index_present(session.client):
            console.print("no index of the old layout here: nothing to move")
            return
        s = session.settings
        moved = migrate_legacy_index(
            session.client, ImageDeduplicator(session.client, s.dedup_threshold, s.dedup_dhash_threshold)
        )
        console.print(
            f"moved {moved.records} kept images, {moved.raw_digests} raw digests and {moved.garbage} files "
            f"waiting for deletion; dropped {moved.dropped_keys} keys of the old layout"
        )
