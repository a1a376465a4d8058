"""The ``homeshots`` command: a group of the commands in ``commands_*``."""

from __future__ import annotations

import signal
import sys

import click

from homeshots import __version__
from homeshots.core.errors import ConfigError
from homeshots.ops.commands_records import manifest, migrate_index, photos, report, restore, snapshot
from homeshots.ops.commands_runs import backfill, forget, nightly, resume, runs, status
from homeshots.ops.commands_services import flower, metrics
from homeshots.ops.run_view import err


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="homeshots")
def main() -> None:
    """Collect, deduplicate, standardize and store real-estate photos on a Celery cluster."""


for command in (
    backfill,
    nightly,
    resume,
    status,
    runs,
    forget,
    manifest,
    photos,
    report,
    snapshot,
    restore,
    migrate_index,
    flower,
    metrics,
):
    main.add_command(command)


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
