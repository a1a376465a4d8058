"""A raw HTTP server on a loopback address that misbehaves on purpose, one handler per path.

The sandbox speaks each source's wire format politely; this one writes bytes by hand so a test can
send what no well-behaved server would: stacked encodings, headers dribbled a byte a second, bodies
longer than their Content-Length, redirect chains, connections dropped mid-body. ``CanaryServer`` is
the same server on an address outside the allow-list: it must never be reached.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[["Exchange"], None]


@dataclass
class Exchange:
    """One request as received, and the socket to answer it on."""

    conn: socket.socket
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, content_length: bool = True
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        extra = dict(headers or {})
        if content_length and "Content-Length" not in extra:
            extra["Content-Length"] = str(len(body))
        extra.setdefault("Connection", "close")
        head += [f"{k}: {v}" for k, v in extra.items()]
        self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def dribble(self, data: bytes, every: float, stop: threading.Event) -> None:
        """Send ``data`` one byte every ``every`` seconds until done or the server stops."""
        for i in range(len(data)):
            if stop.wait(every):
                return
            self.send(data[i : i + 1])


_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    307: "Temporary Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Server Error",
    503: "Service Unavailable",
}


@dataclass
class RawServer:
    """Threaded TCP server; ``routes`` maps a path (exact, or a prefix ending in '/') to a handler."""

    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def __enter__(self) -> RawServer:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True, name=f"raw-{self.port}").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            exchange = _read_request(conn)
            if exchange is None:
                return
            self.hits.append(exchange.path)
            handler = self._route(exchange.path.split("?", 1)[0])
            if handler is None:
                exchange.respond(404, b"no such route")
            else:
                handler(exchange)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _route(self, path: str) -> Handler | None:
        if path in self.routes:
            return self.routes[path]
        prefixes = [p for p in self.routes if p.endswith("/") and path.startswith(p)]
        return self.routes[max(prefixes, key=len)] if prefixes else None


def _read_request(conn: socket.socket) -> Exchange | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Exchange(conn, method, path, headers, rest[:length])


class CanaryServer(RawServer):
    """Answers nothing useful and remembers every connection: a request reaching it is a guard failure."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        super().__init__(host=host)
        self.routes = {"/": self._record}

    def _record(self, exchange: Exchange) -> None:
        exchange.respond(200, b"canary")
