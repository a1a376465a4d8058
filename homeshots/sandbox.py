"""A local stand-in for the listing sources: real HTTP on 127.0.0.1, no accounts, no internet.

``make demo`` and the test-suite run the whole pipeline against it. It speaks the same wire shapes
as the real services (OAuth2 client credentials, RESO/OData JSON, plain photo URLs) and can be told
to fail on purpose (``fail()``), so retry and error paths are exercised over real sockets.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import random
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from PIL import Image, ImageDraw

STAMP = "2024-05-01T12:00:00Z"
_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_FILTER_FIELDS = {
    "listingkey": "listing_key",
    "unparsedaddress": "address",
    "postalcode": "postal_code",
    "city": "city",
}
_T = Image.Transpose
_UNDO_ORIENTATION = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_90,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_270,
}
"""How to store upright pixels so that a viewer applying EXIF ``Orientation`` shows them upright."""


@dataclass
class Listing:
    """One MLS listing of the fake catalog; ``photos`` are names served under ``/photos/``."""

    listing_key: str
    address: str
    city: str
    postal_code: str
    photos: list[str]


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: str | None
    body: bytes | None


@lru_cache(maxsize=256)
def generate_photo(seed: int, size: tuple[int, int] = (1600, 1200), orientation: int | None = None) -> bytes:
    """A deterministic JPEG (q90) that looks clearly different for every seed.

    Random shapes on a gradient give perceptual hashes far apart; with ``orientation`` the pixels
    are stored rotated and tagged so that EXIF-aware code must turn them upright again.
    """
    rng = random.Random(seed)
    w, h = size
    top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    mask = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(6, 14)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randint(w // 10, w // 2), y0 + rng.randint(h // 10, h // 2))
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    out = io.BytesIO()
    if orientation is None:
        img.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        if orientation in _UNDO_ORIENTATION:
            img = img.transpose(_UNDO_ORIENTATION[orientation])
        img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def _downscaled_copy(data: bytes, scale: float = 0.6, quality: int = 80) -> bytes:
    """A smaller re-encoded copy of a photo: a near duplicate, as listings re-upload them."""
    with Image.open(io.BytesIO(data)) as img:
        exif = img.info.get("exif")
        small = img.convert("RGB").resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-response (a size cap, a cancelled task) are normal, not tracebacks."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SandboxServer:
    """Fake RESO Web API + OAuth2 token endpoint + photo host, on a free local port."""

    def __init__(
        self,
        listings: list[Listing],
        photos: dict[str, bytes],
        *,
        client_id: str = "sandbox",
        client_secret: str = "sandbox-secret",
        latency: float = 0.0,
        page_size: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.listings, self.photos = list(listings), dict(photos)
        self.client_id, self.client_secret = client_id, client_secret
        self.latency, self.page_size = latency, max(1, page_size)
        self.host, self.port = host, port
        self.request_log: list[tuple[str, str]] = []
        self.issued_tokens: list[str] = []
        self._sizes = {name: _image_size(data) for name, data in self.photos.items()}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        sandbox = self

        class Handler(_Handler):
            server_state = sandbox

        self._httpd = _QuietServer((self.host, self.port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def reso_base_url(self) -> str:
        return self.base_url + "/reso/odata"

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth2/token"

    def photo_url(self, name: str) -> str:
        return f"{self.base_url}/photos/{quote(name)}"

    def env(self) -> dict[str, str]:
        """The ``HOMESHOTS_*`` variables that point homeshots at this sandbox."""
        return {
            "HOMESHOTS_RESO_BASE_URL": self.reso_base_url,
            "HOMESHOTS_RESO_TOKEN_URL": self.token_url,
            "HOMESHOTS_RESO_CLIENT_ID": self.client_id,
            "HOMESHOTS_RESO_CLIENT_SECRET": self.client_secret,
            "HOMESHOTS_ALLOW_PRIVATE_HOSTS": self.host,
        }

    # --- failure injection -----------------------------------------------------------------------------
    def fail(
        self,
        path_prefix: str,
        status: int,
        times: int,
        retry_after: str | None = None,
        body: bytes | None = None,
    ) -> None:
        """Answer the next ``times`` requests under ``path_prefix`` with ``status`` (and ``body``)."""
        with self._lock:
            self._failures.append(_Failure(path_prefix, status, times, retry_after, body))

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.times > 0 and path.startswith(failure.prefix):
                    failure.times -= 1
                    return failure
        return None

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self.request_log.append((method, path))

    # --- endpoint logic (called from handler threads) -----------------------------------------------------
    def _token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, Any]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        cid, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if not (secrets.compare_digest(cid, self.client_id) and secrets.compare_digest(secret, self.client_secret)):
            return 401, {"error": "invalid_client", "error_description": "bad client credentials"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.issued_tokens.append(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token.strip() in self.issued_tokens

    def _property(self, query: dict[str, str]) -> tuple[int, Any]:
        flt = query.get("$filter", "")
        wanted: dict[str, str] = {}
        for clause in re.split(r"\s+and\s+", flt, flags=re.IGNORECASE) if flt.strip() else []:
            m = _CLAUSE.fullmatch(clause)
            if not m or m.group(1).lower() not in _FILTER_FIELDS:
                return 400, {"error": {"code": "", "message": f"unsupported $filter clause: {clause!r}"}}
            wanted[_FILTER_FIELDS[m.group(1).lower()]] = m.group(2).replace("''", "'")
        try:
            top, skip = int(query.get("$top", self.page_size)), int(query.get("$skip", 0))
        except ValueError:
            return 400, {"error": {"code": "", "message": "$top and $skip must be integers"}}
        hits = [x for x in self.listings if all(getattr(x, f).lower() == v.lower() for f, v in wanted.items())]
        size = max(1, min(top, self.page_size))
        expand = "media" in query.get("$expand", "").lower()
        body: dict[str, Any] = {
            "@odata.context": f"{self.reso_base_url}/$metadata#Property",
            "value": [self._listing_json(x, expand) for x in hits[skip : skip + size]],
        }
        if skip + size < len(hits) and top > size:  # OData: $top caps the total, pages carry the rest
            nxt = query | {"$top": str(top - size), "$skip": str(skip + size)}
            body["@odata.nextLink"] = f"{self.reso_base_url}/Property?{urlencode(nxt, quote_via=quote)}"
        return 200, body

    def _listing_json(self, listing: Listing, expand: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ListingKey": listing.listing_key,
            "ListingId": listing.listing_key.removeprefix("PHX"),
            "UnparsedAddress": listing.address,
            "City": listing.city,
            "PostalCode": listing.postal_code,
            "StateOrProvince": "AZ",
            "StandardStatus": "Active",
            "ModificationTimestamp": STAMP,
        }
        if expand:
            doc["Media"] = [
                {
                    "MediaKey": f"{listing.listing_key}-M{i}",
                    "MediaURL": self.photo_url(name),
                    "Order": i,
                    "MediaCategory": "Photo",
                    "MediaType": "image/jpeg",
                    "ImageWidth": (self._sizes.get(name) or (None, None))[0],
                    "ImageHeight": (self._sizes.get(name) or (None, None))[1],
                    "MediaModificationTimestamp": STAMP,
                    "ResourceRecordKey": listing.listing_key,
                }
                for i, name in enumerate(listing.photos, start=1)
            ]
        return doc


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning ``SandboxServer``; HTTP/1.1 so clients can keep connections."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    server_state: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read request_log instead
        pass

    def _reply(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: Any) -> None:
        self._reply(status, json.dumps(doc).encode(), "application/json; charset=utf-8")

    def _handle(self) -> None:
        sb = self.server_state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        sb._log(self.command, path)
        failure = sb._take_failure(path)
        if failure is not None:
            body = failure.body if failure.body is not None else json.dumps({"error": "injected"}).encode()
            ctype = "text/html; charset=utf-8" if body.lstrip()[:1] == b"<" else "application/json"
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else None
            return self._reply(failure.status, body, ctype, extra)
        if path == "/oauth2/token" and self.command == "POST":
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            return self._json(*sb._token(form, self._basic()))
        if path == "/reso/odata/Property" and self.command == "GET":
            if not sb._authorized(self.headers.get("Authorization", "")):
                return self._json(401, {"error": {"code": "401", "message": "missing or invalid bearer token"}})
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            return self._json(*sb._property(query))
        if path.startswith("/photos/") and self.command in ("GET", "HEAD"):
            name = path.removeprefix("/photos/")
            if sb.latency:
                time.sleep(sb.latency)
            data = sb.photos.get(name)
            if data is None:
                return self._reply(404, b"not found", "text/plain")
            return self._reply(200, data, mimetypes.guess_type(name)[0] or "application/octet-stream")
        self._json(404, {"error": f"no route for {self.command} {path}"})

    def _basic(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            cid, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return unquote(cid), unquote(secret)

    do_GET = do_POST = do_HEAD = _handle


# --- the demo catalog ------------------------------------------------------------------------------------

CATALOG: list[tuple[str, str, str]] = [
    ("PHX1001", "4732 E Camelback Rd", "85018"),
    ("PHX1002", "1824 W Palm Ln", "85007"),
    ("PHX1003", "3311 N 44th St", "85018"),
    ("PHX1004", "910 E Osborn Rd", "85014"),
    ("PHX1005", "2245 E Highland Ave", "85016"),
    ("PHX1006", "6134 N 12th Pl", "85014"),
    ("PHX1007", "1502 W Encanto Blvd", "85007"),
    ("PHX1008", "5220 E Windsor Ave", "85008"),
    ("PHX1009", "7015 N Central Ave", "85020"),
    ("PHX1010", "4411 N 40th St", "85018"),
    ("PHX1011", "808 W Roosevelt St", "85007"),
]
"""Listings matching examples/properties.csv; PHX1012 is deliberately absent (no listing)."""
ROOMS = ("frontal", "kitchen", "bedroom", "bathroom")


def default_sandbox(photo_dir: Path | None) -> SandboxServer:
    """The demo catalog: 4 photos per listing plus one exact duplicate, one near duplicate, one 404.

    Real photos come from ``photo_dir/{n}_{room}.jpg`` (house n = 1..11) when all four exist;
    otherwise generated ones, one per listing stored sideways with EXIF orientation 6.
    """
    listings: list[Listing] = []
    photos: dict[str, bytes] = {}
    for n, (key, address, postal_code) in enumerate(CATALOG, start=1):
        files = [photo_dir / f"{n}_{room}.jpg" for room in ROOMS] if photo_dir else []
        real = bool(files) and all(f.is_file() for f in files)
        names = []
        for i, room in enumerate(ROOMS):
            name = f"{key}_{room}.jpg"
            photos[name] = (
                files[i].read_bytes() if real else generate_photo(n * 10 + i, orientation=6 if i == 2 else None)
            )
            names.append(name)
        listings.append(Listing(key, address, "Phoenix", postal_code, names))
    photos["PHX1002_street.jpg"] = photos["PHX1001_frontal.jpg"]  # exact duplicate
    photos["PHX1003_kitchen2.jpg"] = _downscaled_copy(photos["PHX1001_kitchen.jpg"])  # near duplicate
    listings[1].photos.append("PHX1002_street.jpg")
    listings[2].photos.append("PHX1003_kitchen2.jpg")
    listings[10].photos.append("PHX1011_missing.jpg")  # listed but never served: a failed download
    return SandboxServer(listings, photos)


def serve(host: str, port: int, photo_dir: Path | None) -> None:
    """Run the demo sandbox in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox = default_sandbox(photo_dir)
    sandbox.host, sandbox.port = host, port
    try:
        with sandbox:
            print(f"homeshots sandbox listening on {sandbox.base_url}; point homeshots at it with:", flush=True)
            for name, value in sandbox.env().items():
                print(f"export {name}={value}", flush=True)
            while not stop.wait(0.5):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
