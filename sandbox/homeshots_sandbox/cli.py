"""``homeshots-sandbox``: serve the imitated sources, or run the demo backfill against them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from homeshots_sandbox.catalog import default_sandbox, run, serve
from homeshots_sandbox.world import World

REPO = Path(__file__).resolve().parents[2]
"""The checkout this sandbox is installed from (editable, by ``make setup``)."""


def default_photo_dir() -> Path | None:
    """``../shared/datasets/houses`` beside the checkout, when it is there (real photos for the demo)."""
    candidate = REPO.parent / "shared" / "datasets" / "houses"
    return candidate if candidate.is_dir() else None


@click.group()
def main() -> None:
    """The four listing sources imitated on 127.0.0.1, for trials, the demo and the tests."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option(
    "--advertise-url",
    help="Base URL written into the URLs it hands out (e.g. http://sandbox:8765 in "
    "a compose network), when clients reach it under another name than --host.",
)
@click.option("--photos", type=click.Path(file_okay=False, path_type=Path), help="Folder of N_room.jpg photos.")
@click.option("--world", "use_world", is_flag=True, help="Serve an evolving World (nightly runs) instead of the demo.")
@click.option("--properties", "n_properties", default=80, show_default=True, help="World: number of properties.")
@click.option("--seed", default=0, show_default=True, help="World: the seed everything follows from.")
@click.option("--night", default=0, show_default=True, help="World: start at this night.")
@click.option("--change-fraction", default=0.1, show_default=True, help="World: share of listings changed a night.")
@click.option("--page-size", default=25, show_default=True, help="World: RESO page size.")
def serve_command(
    host: str,
    port: int,
    advertise_url: str | None,
    photos: Path | None,
    use_world: bool,
    n_properties: int,
    seed: int,
    night: int,
    change_fraction: float,
    page_size: int,
) -> None:
    """Serve the demo catalog (or, with --world, an evolving world) on all four sources until Ctrl-C.

    A world moves to its next night on ``POST /sandbox/advance`` (``?change_fraction=`` optional);
    ``GET /sandbox/truth?night=N`` says exactly what that night changed.
    """
    if not use_world:
        serve(host, port, photos or default_photo_dir(), advertise_url)
        return
    world = World(n_properties, seed, change_fraction=change_fraction)
    world.goto(night)
    run(world.server(page_size=page_size), host, port, advertise_url)


@main.command()
@click.option(
    "--properties",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=REPO / "examples" / "properties.csv",
    show_default=True,
)
def demo(properties: Path) -> None:
    """Start the sandbox, then ``homeshots backfill`` the example properties on the embedded default."""
    photos = default_photo_dir()
    click.echo(f"sandbox photos: {photos or 'generated (no ../shared/datasets/houses here)'}")
    with default_sandbox(photos) as server:
        env = dict(os.environ) | server.env()
        command = [sys.executable, "-m", "homeshots", "backfill", str(properties), "--run-id", "demo"]
        sys.exit(subprocess.call(command, env=env))
