"""The sandbox's HTTP server: one port, a route table filled by one service per imitated source.

It is real HTTP on 127.0.0.1 (stdlib ``ThreadingHTTPServer``), answers in each service's wire
format, and can be told to fail on purpose (``fail()``), so retry, throttling and error paths are
exercised over real sockets.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from homeshots_sandbox.conditional import etag_of, http_date, not_modified
from homeshots_sandbox.http import Handler, Request, Response, Service, json_response
from homeshots_sandbox.listing import Listing
from homeshots_sandbox.maricopa import MaricopaService
from homeshots_sandbox.mls import MlsService
from homeshots_sandbox.photos import image_size, resized_copy
from homeshots_sandbox.redfin import RedfinService
from homeshots_sandbox.snapshot import Snapshot
from homeshots_sandbox.zillow import ZillowService

if TYPE_CHECKING:
    from homeshots_sandbox.world import World

PHOTO_ROUTES = ("/photos/", "/cdn/")
CONTROL_PREFIX = "/sandbox/"


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: str | None
    body: bytes | None


@dataclass
class SandboxStats:
    """What the sandbox has served, so tests and benchmarks can price a run: photo bodies vs 304s.

    ``bodies``/``body_bytes``/``not_modified`` count photo answers (GET bodies actually sent; HEAD
    sends none); ``photo_*`` split them by URL family (``photos``, ``cdn/mls``, ``cdn/zillow``,
    ``cdn/redfin``); ``requests`` counts every routed request by its route (``/reso/odata/Property``,
    ``/zillow/homedetails/``, ``/cdn/``...); ``injected`` the answers ``fail()`` replaced.
    """

    bodies: int = 0
    body_bytes: int = 0
    not_modified: int = 0
    injected: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    photo_bodies: Counter[str] = field(default_factory=Counter)
    photo_bytes: Counter[str] = field(default_factory=Counter)
    photo_not_modified: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def api_requests(self) -> int:
        """Requests to the sources' APIs and pages: everything routed but photos and sandbox control."""
        with self._lock:
            return sum(n for route, n in self.requests.items() if not route.startswith((*PHOTO_ROUTES, CONTROL_PREFIX)))

    def count_request(self, route: str) -> None:
        with self._lock:
            self.requests[route] += 1

    def count_injected(self) -> None:
        with self._lock:
            self.injected += 1

    def count_photo(self, family: str, sent: int | None) -> None:
        """One photo answer: ``sent`` body bytes, or None for a 304."""
        with self._lock:
            if sent is None:
                self.not_modified += 1
                self.photo_not_modified[family] += 1
            else:
                self.bodies += 1
                self.body_bytes += sent
                self.photo_bodies[family] += 1
                self.photo_bytes[family] += sent

    def reset(self) -> None:
        """Start counting afresh (e.g. before a night's run)."""
        with self._lock:
            self.bodies = self.body_bytes = self.not_modified = self.injected = 0
            for counter in (self.requests, self.photo_bodies, self.photo_bytes, self.photo_not_modified):
                counter.clear()

    def as_dict(self) -> dict[str, Any]:
        """Plain data, e.g. for a benchmark's JSON report."""
        with self._lock:
            doc: dict[str, Any] = {
                "bodies": self.bodies,
                "body_bytes": self.body_bytes,
                "not_modified": self.not_modified,
                "injected": self.injected,
                "requests": dict(self.requests),
                "photo_bodies": dict(self.photo_bodies),
                "photo_bytes": dict(self.photo_bytes),
                "photo_not_modified": dict(self.photo_not_modified),
            }
        doc["api_requests"] = self.api_requests
        return doc


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-response (a size cap, a cancelled task) are normal, not tracebacks."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SandboxServer:
    """All sources on one free local port: RESO Web API (+ OAuth2), assessor, Zillow, Redfin, photos."""

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
        services: list[str] | None = None,
    ) -> None:
        photos = dict(photos)
        self._static = Snapshot(list(listings), photos, {name: image_size(data) for name, data in photos.items()})
        self.world: World | None = None
        """The evolving world this server answers from (``from_world``); None: the static catalog above."""
        self._request_snapshot = threading.local()
        self.client_id, self.client_secret = client_id, client_secret
        self.latency, self.page_size = latency, max(1, page_size)
        self.host, self.port = host, port
        self.advertise_url: str | None = None
        self.request_log: list[tuple[str, str]] = []
        self.request_times: list[float] = []
        """``time.monotonic()`` of each request in ``request_log``, for rate assertions."""
        self.request_targets: list[str] = []
        """The raw request target (path and query) of each request in ``request_log``."""
        self.stats = SandboxStats()
        self._variant_etags: dict[tuple[str, int, str], str] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.services: dict[str, Service] = _build_services(self, services)
        self._routes: list[tuple[str, str, Handler]] = [
            ("GET", "/photos/", self._photo),
            ("GET", "/cdn/", self._variant),
        ]
        for service in self.services.values():
            self._routes += service.routes()

    @classmethod
    def from_world(cls, world: World, *, page_size: int = 25, **kwargs: Any) -> SandboxServer:
        """A server answering from ``world``'s current night; ``world.advance()`` changes its answers.

        It also serves the control routes ``POST /sandbox/advance`` (optional ``change_fraction``),
        ``GET /sandbox/world`` and ``GET /sandbox/truth?night=N`` for trying nightly runs by hand.
        """
        server = cls([], {}, page_size=page_size, **kwargs)
        server.world = world
        server._routes += [
            ("POST", CONTROL_PREFIX + "advance", server._advance),
            ("GET", CONTROL_PREFIX + "world", server._world_info),
            ("GET", CONTROL_PREFIX + "truth", server._truth),
        ]
        return server

    # --- what is served ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The catalog being answered: the current request's (fixed for its whole life), else the latest."""
        current: Snapshot | None = getattr(self._request_snapshot, "value", None)
        if current is not None:
            return current
        return self.world.snapshot() if self.world is not None else self._static

    @property
    def listings(self) -> list[Listing]:
        return self.snapshot().listings

    @listings.setter
    def listings(self, value: list[Listing]) -> None:
        self._require_static()
        self._static = replace(self._static, listings=list(value))

    @property
    def photos(self) -> dict[str, bytes]:
        return self.snapshot().photos  # type: ignore[return-value]  # a Mapping for a world

    @photos.setter
    def photos(self, value: dict[str, bytes]) -> None:
        self._require_static()
        photos = dict(value)
        self._static = replace(self._static, photos=photos, sizes={n: image_size(d) for n, d in photos.items()})

    def _require_static(self) -> None:
        if self.world is not None:
            raise AttributeError("a world-backed sandbox changes through world.advance(), not by assignment")

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> SandboxServer:
        sandbox = self

        class Bound(_Handler):
            server_state = sandbox

        self._httpd = _QuietServer((self.host, self.port), Bound)
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
        """Where clients reach the sandbox, as written into every URL it hands out (photos, next pages,
        env): ``advertise_url`` when set (a container listening on 0.0.0.0 is reached by its service
        name), else the address it listens on."""
        return self.advertise_url.rstrip("/") if self.advertise_url else f"http://{self.host}:{self.port}"

    @property
    def mls_base_url(self) -> str:
        return self.base_url + "/reso/odata"

    @property
    def token_url(self) -> str:
        return self.base_url + "/oauth2/token"

    def photo_url(self, name: str) -> str:
        return f"{self.base_url}/photos/{quote(name)}"

    def variant_url(self, source: str, name: str, width: int, fmt: str = "jpg") -> str:
        """A resized copy of master photo ``name`` as ``source``'s CDN would serve it."""
        stem = name.rsplit(".", 1)[0]
        return f"{self.base_url}/cdn/{source}/{width}/{quote(stem)}.{fmt}"

    def photo_size(self, name: str) -> tuple[int, int] | None:
        return self.snapshot().sizes.get(name)

    def upright_width(self, name: str) -> int | None:
        """The photo's width as viewers (and CDNs) show it, EXIF orientation applied."""
        return self.snapshot().upright_width(name)

    def photo_time(self, name: str) -> datetime:
        """When photo ``name``'s bytes last changed: its Last-Modified and MediaModificationTimestamp."""
        return self.snapshot().photo_time(name)

    def media_key(self, name: str) -> str | None:
        """The RESO MediaKey of a world photo (its identity); None in a static catalog."""
        return self.snapshot().media_keys.get(name)

    def env(self) -> dict[str, str]:
        """The ``HOMESHOTS_*`` variables that point homeshots at this sandbox (all its sources)."""
        host = urlsplit(self.base_url).hostname or self.host
        env = {"HOMESHOTS_ALLOW_PRIVATE_HOSTS": host, "HOMESHOTS_SOURCES": ",".join(self.services)}
        for name, service in self.services.items():
            env |= service.env()
            env[f"HOMESHOTS_{name.upper()}_RATE"] = "50"  # a local fake needs no politeness
        return env

    def listings_for(self, source: str) -> list[Listing]:
        return [x for x in self.listings if source in x.sources]

    # --- failure injection -----------------------------------------------------------------------------
    def fail(
        self, path_prefix: str, status: int, times: int, retry_after: str | None = None, body: bytes | None = None
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

    def _log(self, method: str, path: str, target: str = "") -> None:
        with self._lock:
            self.request_log.append((method, path))
            self.request_times.append(time.monotonic())
            self.request_targets.append(target or path)

    # --- dispatch ------------------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        self._log(request.method, request.path, request.target)
        failure = self._take_failure(request.path)
        if failure is not None:
            self.stats.count_injected()
            body = failure.body if failure.body is not None else json.dumps({"error": "injected"}).encode()
            ctype = "text/html; charset=utf-8" if body.lstrip()[:1] == b"<" else "application/json"
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return Response(failure.status, body, ctype, extra)
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, route, handler in self._routes:
            hit = request.path.startswith(route) if route.endswith("/") else request.path == route
            if hit and route_method == method:
                self.stats.count_request(route)
                self._request_snapshot.value = self.snapshot()
                try:
                    return handler(request)
                finally:
                    self._request_snapshot.value = None
        return json_response(404, {"error": f"no route for {request.method} {request.path}"})

    def _photo(self, request: Request) -> Response:
        name = request.path.removeprefix("/photos/")
        if self.latency:
            time.sleep(self.latency)
        snapshot = self.snapshot()
        data = snapshot.photos.get(name)
        if data is None:
            return Response(404, b"not found", "text/plain")
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return self._answer_photo(request, "photos", etag_of(data), snapshot.photo_time(name), ctype, lambda: data)

    def _variant(self, request: Request) -> Response:
        try:
            _, _, source, width, file = request.path.split("/", 4)
            stem, ext = file.rsplit(".", 1)
            size = int(width)
        except ValueError:
            return Response(404, b"not found", "text/plain")
        snapshot = self.snapshot()
        name = snapshot.name_for_stem(stem)
        master = snapshot.photos.get(name) if name is not None else None
        if name is None or master is None or ext not in ("jpg", "webp") or not 16 <= size <= 4096:
            return Response(404, b"not found", "text/plain")
        if self.latency:
            time.sleep(self.latency)
        fmt = "WEBP" if ext == "webp" else "JPEG"
        key = (etag_of(master), size, fmt)
        etag = self._variant_etags.get(key)  # known once served: a 304 then costs no resize
        if etag is None:
            etag = self._variant_etags.setdefault(key, etag_of(resized_copy(master, size, fmt)))
        ctype = f"image/{'webp' if ext == 'webp' else 'jpeg'}"
        body = lambda: resized_copy(master, size, fmt)  # noqa: E731
        return self._answer_photo(request, f"cdn/{source}", etag, snapshot.photo_time(name), ctype, body)

    def _answer_photo(
        self, request: Request, family: str, etag: str, modified: datetime, ctype: str, body: Callable[[], bytes]
    ) -> Response:
        """200 with validators, or 304 (no body, same validators) when the client's copy is current."""
        headers = {"ETag": etag, "Last-Modified": http_date(modified)}
        if not_modified(request.headers, etag, modified):
            self.stats.count_photo(family, None)
            return Response(304, b"", ctype, headers)
        data = body()
        if request.method != "HEAD":  # HEAD sends no body: neither a body nor a 304
            self.stats.count_photo(family, len(data))
        return Response(200, data, ctype, headers)

    # --- world control ----------------------------------------------------------------------------------------
    def _advance(self, request: Request) -> Response:
        assert self.world is not None
        raw = request.query.get("change_fraction") or request.form().get("change_fraction")
        try:
            fraction = None if raw in (None, "") else float(raw)
            truth = self.world.advance(fraction)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, truth.summary())

    def _world_info(self, request: Request) -> Response:
        assert self.world is not None
        return json_response(200, self.world.describe())

    def _truth(self, request: Request) -> Response:
        assert self.world is not None
        try:
            night = int(request.query.get("night", self.world.night))
            return json_response(200, self.world.truth(night).as_dict())
        except (ValueError, IndexError) as exc:
            return json_response(404, {"error": str(exc)})


def _build_services(server: SandboxServer, names: list[str] | None) -> dict[str, Service]:
    factories: dict[str, Callable[[SandboxServer], Service]] = {
        "mls": MlsService,
        "maricopa": MaricopaService,
        "zillow": ZillowService,
        "redfin": RedfinService,
    }
    unknown = set(names or []) - set(factories)
    if unknown:
        raise ValueError(f"unknown sandbox services {sorted(unknown)}; known: {sorted(factories)}")
    return {name: factory(server) for name, factory in factories.items() if names is None or name in names}


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the ``SandboxServer``; HTTP/1.1 so clients can keep connections."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    disable_nagle_algorithm = True  # small JSON answers would otherwise wait ~40 ms for a delayed ACK
    server_state: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read request_log instead
        pass

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(
            self.command,
            unquote(parts.path),
            query,
            self.headers,
            raw,  # type: ignore[arg-type]
            unquote(self.path),
        )
        response = self.server_state.dispatch(request)
        self.send_response(response.status)
        if response.status != 304:  # a 304 has no body, so no Content-Length or Content-Type
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and response.status != 304:
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = _handle
