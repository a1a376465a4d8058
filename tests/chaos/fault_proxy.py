"""A reverse proxy on 127.0.0.1 in front of an S3 server that fails on command: 503s and stalls."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    """Forwards every request to ``upstream``; ``fail(n)`` answers the next n writes with 503,
    ``stall(n, seconds)`` holds the next n writes past the client's read timeout."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.failed = 0
        self.stalled = 0
        self._fail = 0
        self._stall: tuple[int, float] = (0, 0.0)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def fail(self, times: int) -> None:
        with self._lock:
            self._fail = times

    def stall(self, times: int, seconds: float) -> None:
        with self._lock:
            self._stall = (times, seconds)

    def _fault(self, method: str) -> tuple[str, float] | None:
        if method not in ("PUT", "POST", "DELETE"):
            return None
        with self._lock:
            if self._fail > 0:
                self._fail -= 1
                self.failed += 1
                return ("fail", 0.0)
            if self._stall[0] > 0:
                self._stall = (self._stall[0] - 1, self._stall[1])
                self.stalled += 1
                return ("stall", self._stall[1])
        return None

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault(self.command)
                if fault and fault[0] == "fail":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(UNAVAILABLE)))
                    self.end_headers()
                    self.wfile.write(UNAVAILABLE)
                    return
                if fault:
                    time.sleep(fault[1])  # the client times out; the write never reaches S3
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                upstream = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=30
                )
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(upstream.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
