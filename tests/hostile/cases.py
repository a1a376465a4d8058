"""The hostile-input cases: what a source sends, and the named outcome each one must end in.

Every case is one listing served by a ``RawServer`` speaking the RESO Web API (the MLS source), whose
media point at hostile routes beside two benign photos. A case names the image failure kinds it
expects, whether the property ends ``completed`` (every failure permanent) or ``failed`` (a retry may
help), how many photos are stored (the benign ones, unless the case says otherwise), and the time it
may take. Memory is bounded for every case alike (``MAX_MB``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.hostile import inputs
from tests.hostile.server import CanaryServer, Exchange, Handler, RawServer

MAX_MB = 300.0
"""Peak RSS of the worker process on any single hostile input."""
BENIGN = 2
LISTING_KEY = "H1"


@dataclass
class Scene:
    """The servers a case is built against; every path of a case lives under its own ``prefix``, so
    cases can share the servers and run at the same time."""

    server: RawServer
    canary: CanaryServer
    prefix: str = ""

    def url(self, path: str) -> str:
        return self.server.url(self.prefix + path)

    @property
    def canary_url(self) -> str:
        return self.canary.url("/latest/meta-data/x.jpg")


def body(data: bytes | Callable[[], bytes], ctype: str = "image/jpeg", **headers: str) -> Handler:
    def handle(ex: Exchange) -> None:
        ex.respond(200, data() if callable(data) else data, {"Content-Type": ctype, **headers})

    return handle


def status(code: int, **headers: str) -> Handler:
    return lambda ex: ex.respond(code, b"", headers)


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    routes: Callable[[Scene], dict[str, Handler]] = lambda _s: {}
    media: Callable[[Scene], list[object]] = lambda _s: []
    kinds: tuple[str, ...] = ()
    status: str = "completed"
    stored: int = BENIGN
    reso: Callable[[Scene, list[dict[str, object]]], Handler] | None = None
    """Replaces the RESO answer (API-level cases); gets the listing's Media list."""
    source_kind: str | None = None
    """Expected kind of a source-level failure (the property's reason), for API-level cases."""
    max_seconds: float = 20.0
    env: dict[str, str] = field(default_factory=dict)


def reso_page(media: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"value": [{"ListingKey": LISTING_KEY, "Media": media}], **extra}).encode()


def media_item(order: int, url: object) -> dict[str, object]:
    return {
        "MediaKey": f"M{order}",
        "MediaURL": url,
        "Order": order,
        "MediaCategory": "Photo",
        "MediaType": "image/jpeg",
    }


def one(path: str, handler: Handler) -> Callable[[Scene], dict[str, Handler]]:
    return lambda _s: {path: handler}


def at(path: str) -> Callable[[Scene], list[object]]:
    return lambda s: [s.url(path)]


def _redirect_to(target: Callable[[Scene], str]) -> Callable[[Scene], dict[str, Handler]]:
    return lambda s: {"/r": status(302, Location=target(s))}


def _gzip_api(scene: Scene, media: list[dict[str, object]]) -> Handler:
    return body(lambda: inputs.gzip_bomb(3), "application/json", **{"Content-Encoding": "gzip, gzip, gzip"})


def _html_api(_scene: Scene, _media: list[dict[str, object]]) -> Handler:
    return body(inputs.HTML, "text/html")


def _slow_api(scene: Scene, _media: list[dict[str, object]]) -> Handler:
    return lambda ex: ex.dribble(b"HTTP/1.1 200 OK\r\n\r\n{}", 0.5, scene.server.stopping)


def _next_loop(scene: Scene, media: list[dict[str, object]]) -> Handler:
    return body(reso_page(media, **{"@odata.nextLink": scene.url("/reso/odata/Property?page=2")}), "application/json")


def _thousands(scene: Scene, media: list[dict[str, object]]) -> Handler:
    many = media + [media_item(100 + i, scene.url(f"/ok/{i % 2}.jpg?copy={i}")) for i in range(3000)]
    return body(reso_page(many), "application/json")


def _bad_item(scene: Scene, media: list[dict[str, object]]) -> Handler:
    return body(reso_page([*media, media_item(99, {"not": "a string"}), media_item(98, 12345)]), "application/json")


def _throttled(_scene: Scene, _media: list[dict[str, object]]) -> Handler:
    return status(429, **{"Retry-After": "1"})


CASES: list[Case] = [
    # --- image bodies --------------------------------------------------------------------------------------
    Case("truncated-jpeg", "images", one("/x.jpg", body(inputs.truncated_jpeg)), at("/x.jpg"), ("bad_image",)),
    Case(
        "html-instead-of-image", "images", one("/x.jpg", body(inputs.HTML, "text/html")), at("/x.jpg"), ("bad_image",)
    ),
    Case("empty-body", "images", one("/x.jpg", body(b"")), at("/x.jpg"), ("bad_image",)),
    Case("svg", "images", one("/x.svg", body(inputs.SVG, "image/svg+xml")), at("/x.svg"), ("bad_image",)),
    Case(
        "pixel-flood-png",
        "images",
        one("/x.png", body(inputs.pixel_flood_png, "image/png")),
        at("/x.png"),
        ("bad_image",),
    ),
    Case(
        "decoded-size-flood-png",
        "images",
        one("/x.png", body(inputs.big_rgb_png, "image/png")),
        at("/x.png"),
        ("bad_image",),
    ),
    Case("lying-jpeg-header", "images", one("/x.jpg", body(inputs.lying_jpeg_header)), at("/x.jpg"), ("bad_image",)),
    Case("big-tiff", "images", one("/x.tif", body(inputs.big_tiff, "image/tiff")), at("/x.tif"), ("bad_image",)),
    Case(
        "png-text-chunk-bomb",
        "images",
        one("/x.png", body(inputs.text_bomb_png, "image/png")),
        at("/x.png"),
        ("bad_image",),
    ),
    Case(
        "one-pixel", "images", one("/x.png", body(inputs.one_pixel_png, "image/png")), at("/x.png"), stored=BENIGN + 1
    ),
    Case(
        "16-bit-gradient",
        "images",
        one("/x.png", body(inputs.gradient_16bit_png, "image/png")),
        at("/x.png"),
        stored=BENIGN + 1,
    ),
    Case(
        "100000x2-strip", "images", one("/x.png", body(inputs.strip_png, "image/png")), at("/x.png"), stored=BENIGN + 1
    ),
    Case(
        "animated-gif", "images", one("/x.gif", body(inputs.animated_gif, "image/gif")), at("/x.gif"), stored=BENIGN + 1
    ),
    Case("cmyk-jpeg", "images", one("/x.jpg", body(inputs.cmyk_jpeg)), at("/x.jpg"), stored=BENIGN + 1),
    Case("broken-exif", "images", one("/x.jpg", body(inputs.broken_exif_jpeg)), at("/x.jpg"), stored=BENIGN + 1),
    Case("broken-icc-profile", "images", one("/x.jpg", body(inputs.broken_icc_jpeg)), at("/x.jpg"), stored=BENIGN + 1),
    Case("webp", "images", one("/x.webp", body(inputs.webp_photo, "image/webp")), at("/x.webp"), stored=BENIGN + 1),
    Case(
        "declared-over-cap",
        "images",
        one("/x.jpg", body(b"x" * 3_000_000)),
        at("/x.jpg"),
        ("too_large",),
        env={"HOMESHOTS_MAX_IMAGE_BYTES": "2000000"},
    ),
    Case(
        "chunked-over-cap",
        "images",
        one(
            "/x.jpg", lambda ex: ex.respond(200, b"x" * 3_000_000, {"Content-Type": "image/jpeg"}, content_length=False)
        ),
        at("/x.jpg"),
        ("too_large",),
        env={"HOMESHOTS_MAX_IMAGE_BYTES": "2000000"},
    ),
    # --- encodings ---------------------------------------------------------------------------------------------
    Case(
        "gzip-bomb",
        "encodings",
        one("/x.jpg", body(lambda: inputs.gzip_bomb(1), **{"Content-Encoding": "gzip"})),
        at("/x.jpg"),
        ("too_large",),
    ),
    Case(
        "stacked-gzip-bomb",
        "encodings",
        one("/x.jpg", body(lambda: inputs.gzip_bomb(3), **{"Content-Encoding": "gzip, gzip, gzip"})),
        at("/x.jpg"),
        ("too_large",),
    ),
    Case(
        "five-stacked-encodings",
        "encodings",
        one("/x.jpg", body(lambda: inputs.gzip_bomb(3), **{"Content-Encoding": "gzip, gzip, gzip, gzip, gzip"})),
        at("/x.jpg"),
        ("bad_encoding",),
    ),
    Case(
        "unknown-encoding",
        "encodings",
        one("/x.jpg", body(b"\x0b\x02\x80", **{"Content-Encoding": "br"})),
        at("/x.jpg"),
        ("bad_encoding",),
    ),
    Case(
        "garbage-gzip",
        "encodings",
        one("/x.jpg", body(b"\x1f\x8b" + b"nonsense" * 10, **{"Content-Encoding": "gzip"})),
        at("/x.jpg"),
        ("bad_encoding",),
    ),
    Case(
        "raw-deflate-photo",
        "encodings",
        one("/x.jpg", body(lambda: inputs.deflated(inputs.benign(7), raw=True), **{"Content-Encoding": "deflate"})),
        at("/x.jpg"),
        stored=BENIGN + 1,
    ),
    # --- slow and broken connections ------------------------------------------------------------------------------
    Case(
        "dribbled-headers",
        "slow",
        lambda s: {
            "/x.jpg": lambda ex: ex.dribble(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot-a-jpg", 0.4, s.server.stopping
            )
        },
        at("/x.jpg"),
        ("deadline",),
        status="failed",
        max_seconds=15,
    ),
    Case(
        "dribbled-body",
        "slow",
        lambda s: {
            "/x.jpg": lambda ex: (
                ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
                ex.dribble(b"x" * 100000, 0.3, s.server.stopping),
            )
        },
        at("/x.jpg"),
        ("deadline",),
        status="failed",
        max_seconds=15,
    ),
    Case(
        "silent-server",
        "slow",
        lambda s: {"/x.jpg": lambda ex: s.server.stopping.wait(30)},
        at("/x.jpg"),
        ("timeout",),
        status="failed",
        max_seconds=20,
    ),
    Case(
        "short-body",
        "slow",
        one("/x.jpg", lambda ex: ex.send(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\nConnection: close\r\n\r\nabc")),
        at("/x.jpg"),
        ("connection",),
        status="failed",
    ),
    # --- redirects --------------------------------------------------------------------------------------------------
    Case("redirect-to-canary", "redirects", _redirect_to(lambda s: s.canary_url), at("/r"), ("unsafe_url",)),
    Case(
        "redirect-to-metadata",
        "redirects",
        _redirect_to(lambda _s: "http://169.254.169.254/latest/meta-data"),
        at("/r"),
        ("unsafe_url",),
    ),
    Case("redirect-to-file", "redirects", _redirect_to(lambda _s: "file:///etc/passwd"), at("/r"), ("unsafe_url",)),
    Case("redirect-loop", "redirects", lambda s: {"/r": status(302, Location=s.url("/r"))}, at("/r"), ("redirect",)),
    Case("redirect-without-location", "redirects", one("/r", status(302)), at("/r"), ("http_error",)),
    Case("redirect-to-benign", "redirects", _redirect_to(lambda s: s.url("/ok/7.jpg")), at("/r"), stored=BENIGN + 1),
    # --- URLs a listing hands out (SSRF forms) ------------------------------------------------------------------
    Case("canary-direct", "ssrf", media=lambda s: [s.canary_url], kinds=("unsafe_url",)),
    Case("decimal-ip", "ssrf", media=lambda s: [f"http://2130706434:{s.canary.port}/x.jpg"], kinds=("unsafe_url",)),
    Case("octal-ip", "ssrf", media=lambda s: [f"http://0177.0.0.2:{s.canary.port}/x.jpg"], kinds=("unsafe_url",)),
    Case(
        "ipv4-mapped-ipv6",
        "ssrf",
        media=lambda s: [f"http://[::ffff:127.0.0.2]:{s.canary.port}/x.jpg"],
        kinds=("unsafe_url",),
    ),
    Case("bracketed-ipv4", "ssrf", media=lambda s: [f"http://[127.0.0.2]:{s.canary.port}/x.jpg"], kinds=("malformed",)),
    Case("port-out-of-range", "ssrf", media=lambda _s: ["http://127.0.0.1:99999/x.jpg"], kinds=("malformed",)),
    Case(
        "userinfo-trick",
        "ssrf",
        media=lambda s: [f"http://127.0.0.1@127.0.0.2:{s.canary.port}/x.jpg"],
        kinds=("unsafe_url",),
    ),
    Case("ftp-scheme", "ssrf", media=lambda _s: ["ftp://127.0.0.1/x.jpg"], kinds=("unsafe_url",)),
    Case("javascript-url", "ssrf", media=lambda _s: ["javascript:alert(1)"], kinds=("unsafe_url",)),
    Case(
        "signed-url-404",
        "secrets",
        media=lambda s: [s.url("/gone.jpg?X-Amz-Signature=s3cr3tsig&token=t0ken")],
        kinds=("not_found",),
    ),
    # --- what the source API itself answers ---------------------------------------------------------------------
    Case("api-stacked-gzip-bomb", "responses", reso=_gzip_api, stored=0, status="failed", source_kind="too_large"),
    Case("api-html-login-page", "responses", reso=_html_api, stored=0, status="failed", source_kind="parse"),
    Case(
        "api-dribbled", "responses", reso=_slow_api, stored=0, status="failed", source_kind="deadline", max_seconds=15
    ),
    Case(
        "api-throttled-forever",
        "responses",
        reso=_throttled,
        stored=0,
        status="failed",
        source_kind="throttled",
        max_seconds=15,
    ),
    Case("api-nextlink-loop", "responses", reso=_next_loop, kinds=("paging_loop",)),
    Case(
        "api-thousands-of-photos",
        "responses",
        reso=_thousands,
        kinds=("too_many_photos",),
        max_seconds=60,
        env={"HOMESHOTS_MAX_PHOTOS_PER_LISTING": "60"},
    ),
    Case("api-bad-media-items", "responses", reso=_bad_item, kinds=("malformed", "malformed")),
]
"""Each case's name is its id; group says which class of the review it exercises."""
