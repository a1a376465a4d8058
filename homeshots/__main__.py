"""``python -m homeshots`` is the ``homeshots`` command."""

from homeshots.ops.cli import run

run()
