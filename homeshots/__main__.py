"""``python -m homeshots`` is the ``homeshots`` command."""

from homeshots.cli import run

run()
