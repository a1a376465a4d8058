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
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from homeshots_sandbox.http import Handler, Request, Response, Service, json_response
from homeshots_sandbox.listing import Listing
from homeshots_sandbox.maricopa import MaricopaService
from homeshots_sandbox.mls import MlsService
from homeshots_sandbox.photos import image_size, resized_copy
from homeshots_sandbox.redfin import RedfinService
from homeshots_sandbox.zillow import ZillowService


@dataclass
class _Failure:
    prefix: str
    status: int
    times: int
    retry_after: str | None
    body: bytes | None


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
        self.listings, self.photos = list(listings), dict(photos)
        self.client_id, self.client_secret = client_id, client_secret
        self.latency, self.page_size = latency, max(1, page_size)
        self.host, self.port = host, port
        self.request_log: list[tuple[str, str]] = []
        self.request_times: list[float] = []
        self.request_targets: list[str] = []
        """The raw request target (path and query) of each request in ``request_log``."""
        """``time.monotonic()`` of each request in ``request_log``, for rate assertions."""
        self._sizes = {name: image_size(data) for name, data in self.photos.items()}
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
        return f"http://{self.host}:{self.port}"

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
        return self._sizes.get(name)

    def env(self) -> dict[str, str]:
        """The ``HOMESHOTS_*`` variables that point homeshots at this sandbox (all its sources)."""
        env = {"HOMESHOTS_ALLOW_PRIVATE_HOSTS": self.host, "HOMESHOTS_SOURCES": ",".join(self.services)}
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
            body = failure.body if failure.body is not None else json.dumps({"error": "injected"}).encode()
            ctype = "text/html; charset=utf-8" if body.lstrip()[:1] == b"<" else "application/json"
            extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return Response(failure.status, body, ctype, extra)
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, route, handler in self._routes:
            hit = request.path.startswith(route) if route.endswith("/") else request.path == route
            if hit and route_method == method:
                return handler(request)
        return json_response(404, {"error": f"no route for {request.method} {request.path}"})

    def _photo(self, request: Request) -> Response:
        name = request.path.removeprefix("/photos/")
        if self.latency:
            time.sleep(self.latency)
        data = self.photos.get(name)
        if data is None:
            return Response(404, b"not found", "text/plain")
        return Response(200, data, mimetypes.guess_type(name)[0] or "application/octet-stream")

    def _variant(self, request: Request) -> Response:
        try:
            _, _, _source, width, file = request.path.split("/", 4)
            stem, ext = file.rsplit(".", 1)
            size = int(width)
        except ValueError:
            return Response(404, b"not found", "text/plain")
        master = next((self.photos[n] for n in self.photos if n.rsplit(".", 1)[0] == stem), None)
        if master is None or ext not in ("jpg", "webp") or not 16 <= size <= 4096:
            return Response(404, b"not found", "text/plain")
        if self.latency:
            time.sleep(self.latency)
        fmt = "WEBP" if ext == "webp" else "JPEG"
        return Response(200, resized_copy(master, size, fmt), f"image/{'webp' if ext == 'webp' else 'jpeg'}")


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
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_HEAD = _handle
