"""The demo catalog: the properties of ``examples/properties.csv`` as every sandboxed source knows them."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from homeshots_sandbox.listing import ALL_SOURCES, Listing
from homeshots_sandbox.photos import downscaled_copy, generate_photo
from homeshots_sandbox.server import SandboxServer

CATALOG: list[tuple[str, str, str, str]] = [
    ("PHX1001", "4732 E Camelback Rd", "85018", "17310005A"),
    ("PHX1002", "1824 W Palm Ln", "85007", "11124062"),
    ("PHX1003", "3311 N 44th St", "85018", "12725018"),
    ("PHX1004", "910 E Osborn Rd", "85014", "11804031"),
    ("PHX1005", "2245 E Highland Ave", "85016", "17018097"),
    ("PHX1006", "6134 N 12th Pl", "85014", "16129014"),
    ("PHX1007", "1502 W Encanto Blvd", "85007", "11110045"),
    ("PHX1008", "5220 E Windsor Ave", "85008", "12603118"),
    ("PHX1009", "7015 N Central Ave", "85020", "16027009"),
    ("PHX1010", "4411 N 40th St", "85018", "17001216"),
    ("PHX1011", "808 W Roosevelt St", "85007", "11136088"),
]
"""Listings matching examples/properties.csv; PHX1012 is deliberately absent (no listing anywhere)."""
ROOMS = ("frontal", "kitchen", "bedroom", "bathroom")


def zpid_for(n: int) -> str:
    return str(7_000_000 + n)


def redfin_id_for(n: int) -> str:
    return str(27_000_000 + n)


def default_sandbox(photo_dir: Path | None) -> SandboxServer:
    """The demo's sources: house n's four photos (real ones from ``photo_dir`` when present) on
    every source, plus an exact copy, a near copy, a missing photo, a bot wall and a gap."""
    listings: list[Listing] = []
    photos: dict[str, bytes] = {}
    for n, (key, address, postal_code, apn) in enumerate(CATALOG, start=1):
        files = [photo_dir / f"{n}_{room}.jpg" for room in ROOMS] if photo_dir else []
        real = bool(files) and all(f.is_file() for f in files)
        names = []
        for i, room in enumerate(ROOMS):
            name = f"{key}_{room}.jpg"
            photos[name] = (
                files[i].read_bytes()
                if real
                else generate_photo(n * 10 + i, size=(2048, 1365), orientation=6 if i == 2 else None)
            )
            names.append(name)
        listings.append(
            Listing(key, address, "Phoenix", postal_code, names, apn=apn, zpid=zpid_for(n), redfin_id=redfin_id_for(n))
        )
    photos["PHX1002_street.jpg"] = photos["PHX1001_frontal.jpg"]  # exact duplicate
    photos["PHX1003_kitchen2.jpg"] = downscaled_copy(photos["PHX1001_kitchen.jpg"])  # near duplicate
    listings[1].photos.append("PHX1002_street.jpg")
    listings[2].photos.append("PHX1003_kitchen2.jpg")
    listings[10].photos.append("PHX1011_missing.jpg")  # listed but never served: a failed download
    listings[7].blocked = frozenset({"zillow"})  # Zillow's bot wall for this one: reported as blocked
    listings[8].sources = ALL_SOURCES - {"redfin"}  # not on Redfin: no listing, not a failure
    listings[5].mls_scale = 0.5  # an old MLS feed: Zillow's and Redfin's copies are larger and replace it
    return SandboxServer(listings, photos)


def serve(host: str, port: int, photo_dir: Path | None, advertise_url: str | None = None) -> None:
    """Run the demo sandbox in the foreground until Ctrl-C or SIGTERM."""
    run(default_sandbox(photo_dir), host, port, advertise_url)


def run(sandbox: SandboxServer, host: str, port: int, advertise_url: str | None = None) -> None:
    """Serve ``sandbox`` in the foreground until Ctrl-C or SIGTERM, printing the env that points at it."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox.host, sandbox.port, sandbox.advertise_url = host, port, advertise_url
    try:
        with sandbox:
            print(f"homeshots sandbox listening on {sandbox.base_url}; point homeshots at it with:", flush=True)
            for name, value in sandbox.env().items():
                print(f"export {name}={value}", flush=True)
            if sandbox.world is not None:
                base = sandbox.base_url
                print(f"# world at night {sandbox.world.night}; next night: curl -X POST {base}/sandbox/advance")
                print(f"# what changed: curl {base}/sandbox/truth?night=N", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
