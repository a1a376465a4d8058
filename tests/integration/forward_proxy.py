"""A tiny HTTP forward proxy on 127.0.0.1 that records what went through it (for proxy routing tests)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx


class ForwardProxy:
    """Accepts absolute-form requests (``GET http://host/path``), forwards them, logs the paths."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.user_agents: set[str] = set()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with proxy._lock:
                    proxy.seen.append(urlsplit(self.path).path)
                    proxy.user_agents.add(self.headers.get("User-Agent", ""))
                upstream = httpx.get(
                    self.path,
                    headers={"User-Agent": self.headers.get("User-Agent", "")},
                    follow_redirects=False,
                    timeout=30,
                )
                self.send_response(upstream.status_code)
                for key in ("content-type", "location"):
                    if key in upstream.headers:
                        self.send_header(key, upstream.headers[key])
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
