"""How a run looks on a terminal: the result table, per source, and failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from managers.extraction_stats import SOURCE_FIELDS, SUMMARY_ROWS


class RateColumn(ProgressColumn):
    """Properties per second (rich's own speed columns assume bytes)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} props/s" if task.speed else "-- props/s")


def progress_line(result: dict[str, Any], meta: dict[str, str]) -> str:
    """A run in progress, as another machine sees it: done/total, failed, stored, rate, ETA."""
    total = int(result.get("total_properties", 0))
    done = int(result.get("properties_completed", 0)) + int(result.get("properties_failed", 0))
    started = datetime.fromisoformat(meta["started_at"]) if meta.get("started_at") else None
    elapsed = (datetime.now(UTC) - started).total_seconds() if started else 0.0
    fresh = done - int(result.get("properties_skipped", 0))
    rate = fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate else "?"
    return (
        f"progress: {done}/{total} properties ({result.get('properties_failed', 0)} failed), "
        f"{result.get('images_stored', 0)} images stored, {rate:.1f} properties/s, ETA {eta}"
    )


def print_result(console: Console, result: dict[str, Any], *, status: str, where: str | None = None) -> None:
    """The run result as two tables: totals, then one row per source."""
    totals = Table(title=f"run {result['run_id']} ({status})", show_header=False)
    totals.add_column("what")
    totals.add_column("value", justify="right")
    for label, key in SUMMARY_ROWS:
        totals.add_row(label, str(result.get(key, 0)))
    console.print(totals)
    sources = Table(title="by source")
    sources.add_column("source")
    for column in SOURCE_FIELDS:
        sources.add_column(column.label, justify="right")
    sources.add_column("failures by kind")
    for name, stats in result.get("by_source", {}).items():
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(stats.get("failures", {}).items())) or "-"
        sources.add_row(name, *(str(stats.get(column.name, 0)) for column in SOURCE_FIELDS), kinds)
    console.print(sources)
    for source, count in result.get("blocked_sources", {}).items():
        console.print(
            f"[bold red]BLOCKED:[/bold red] {source} refused {count} propert{'y' if count == 1 else 'ies'} "
            "with its bot wall; those properties have no photos from it (see failures, or use a proxy)"
        )
    if where:
        console.print(f"images: {where}")


def print_failures(console: Console, failures: list[tuple[str, dict[str, str]]], limit: int = 10) -> None:
    if not failures:
        return
    table = Table(title=f"failed properties (first {min(limit, len(failures))} of {len(failures)})")
    for column in ("property", "source", "kind", "message"):
        table.add_column(column)
    for pid, reason in failures[:limit]:
        table.add_row(pid, reason.get("source", ""), reason.get("kind", ""), reason.get("message", ""))
    console.print(table)


def print_night(console: Console, night: dict[str, Any]) -> None:
    """A nightly run's plan: each source's request budget, and what it visited and deferred."""
    table = Table(title=f"night of {night.get('hours', '?')} h: budget per source")
    for column in ("source", "budget (requests)", "planned", "visited", "deferred"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source, info in night.get("sources", {}).items():
        table.add_row(source, *(str(info.get(k, 0)) for k in ("budget", "requests_planned", "visited", "deferred")))
    console.print(table)
    replication = night.get("replication") or {}
    if replication.get("status") not in (None, "skipped"):
        console.print(
            f"MLS replication: {replication['status']}"
            + (
                f", {replication.get('changed', 0)} listings changed since {replication['since']}, "
                f"{replication.get('kept', 0)} of ours"
                if replication.get("since")
                else ""
            )
            + (f" ({replication['error']})" if replication.get("error") else "")
        )
