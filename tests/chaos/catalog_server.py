"""Serve the test catalog (``make_catalog``) as a process of its own, on a host of a namespace lab.

``python -m tests.chaos.catalog_server --properties N --host ADDR --port P`` builds the same listings
and photos the test builds (the catalog is deterministic), so the test knows exactly what a run must
find, while the sandbox runs on the services host like any other service. It stops on SIGTERM.
"""

from __future__ import annotations

import argparse

from homeshots_sandbox import SandboxServer
from homeshots_sandbox.catalog import run

from tests.integration.helpers import make_catalog, sandbox_for

PHOTO_SIZE = (480, 360)


def build(properties: int, photos_each: int, latency: float = 0.0, **where: object) -> SandboxServer:
    """The sandbox of the test catalog (not started); ``where`` is its ``host``/``port``."""
    listings, photos = make_catalog(properties, photos_each=photos_each, size=PHOTO_SIZE)
    return sandbox_for(listings, photos, latency=latency, **where)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--properties", type=int, required=True)
    parser.add_argument("--photos-each", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run(build(args.properties, args.photos_each, args.latency), args.host, args.port)


if __name__ == "__main__":
    main()
