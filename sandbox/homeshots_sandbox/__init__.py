"""A local stand-in for the listing sources: real HTTP on 127.0.0.1, no accounts, no internet.

``make demo`` and the test-suite run the whole pipeline against it. Each imitated source lives in
its own module and speaks that service's wire format; ``server`` holds the shared HTTP plumbing.
A ``SandboxServer(listings, photos)`` serves a fixed catalog; ``World(...).server()`` serves one that
changes night after night (``world.advance()``), with the exact truth of each night's changes.
"""

from homeshots_sandbox.catalog import default_sandbox, serve
from homeshots_sandbox.http import Request, Response, html_response, json_response
from homeshots_sandbox.listing import ALL_SOURCES, Listing
from homeshots_sandbox.photos import generate_photo, natural_photo, resized_copy
from homeshots_sandbox.server import SandboxServer, SandboxStats
from homeshots_sandbox.world import ListingTruth, NightTruth, PhotoDelta, World, photo_key

__all__ = [
    "ALL_SOURCES",
    "Listing",
    "ListingTruth",
    "NightTruth",
    "PhotoDelta",
    "Request",
    "Response",
    "SandboxServer",
    "SandboxStats",
    "World",
    "default_sandbox",
    "generate_photo",
    "html_response",
    "json_response",
    "natural_photo",
    "photo_key",
    "resized_copy",
    "serve",
]
