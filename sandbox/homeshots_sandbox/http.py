"""The sandbox's request and response types, shared by the server and the imitated sources."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    target: str = ""

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, doc: Any, prefix: str = "") -> Response:
    return Response(status, (prefix + json.dumps(doc)).encode())


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, html.encode(), "text/html; charset=utf-8", headers or {})


Handler = Callable[[Request], Response]


class Service(Protocol):
    """One imitated source: its routes and the env vars that point homeshots at it."""

    def routes(self) -> list[tuple[str, str, Handler]]: ...

    def env(self) -> dict[str, str]: ...
