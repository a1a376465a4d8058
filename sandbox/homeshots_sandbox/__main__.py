"""``python -m homeshots_sandbox`` is the ``homeshots-sandbox`` command."""

from homeshots_sandbox.cli import main

main()
