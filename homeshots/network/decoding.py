"""Decode a response body with a cap on the *decoded* bytes, enforced while decoding.

httpx decodes ``Content-Encoding`` itself, one network read at a time: a 1.8 kB body with stacked
``gzip, gzip`` inflates to gigabytes inside a single read, before any cap on what it yields is
checked. Here the raw bytes are decoded by our own chain of ``zlib`` decompressors, each asked for
at most ``STEP`` bytes per call, so memory stays bounded whatever the number of layers, and the
body is refused the moment it passes the cap. Unknown encodings are refused, not passed through.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

STEP = 64 * 1024
"""Largest piece any stage produces per call: bounds memory per layer of encoding."""
MAX_LAYERS = 4
"""More stacked encodings than this is an attack, not a server."""
ACCEPT_ENCODING = "gzip, deflate"
"""What we ask servers for: the encodings decoded here."""


class EncodingError(ValueError):
    """The body's encoding is unknown, too deeply stacked, or the bytes do not decode."""


class BodyTooLarge(ValueError):
    """The decoded body passed the cap."""


def encodings(header: str | None) -> list[str]:
    """The ``Content-Encoding`` layers in the order they were applied; ``identity`` dropped."""
    layers = [part.strip().lower() for part in (header or "").split(",") if part.strip()]
    layers = [layer for layer in layers if layer != "identity"]
    for layer in layers:
        if layer not in ("gzip", "x-gzip", "deflate"):
            raise EncodingError(f"unsupported Content-Encoding {layer!r}")
    if len(layers) > MAX_LAYERS:
        raise EncodingError(f"{len(layers)} stacked Content-Encodings")
    return layers


class _Stage:
    """One layer: gzip (any number of members) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._new(raw_deflate=False)

    def _new(self, *, raw_deflate: bool) -> None:
        self.raw = raw_deflate
        self.started = False
        self.d = zlib.decompressobj(31 if self.gzip else (-15 if raw_deflate else 15))

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self.d.decompress(data, STEP)
            except zlib.error as exc:
                if not self.gzip and not self.raw and not self.started:
                    self._new(raw_deflate=True)  # a "deflate" body without the zlib header
                    continue
                raise EncodingError(f"body does not decode: {exc}") from None
            self.started = True
            if out:
                yield out
            if self.d.eof:
                rest = self.d.unused_data
                if self.gzip and rest.strip(b"\x00"):
                    self._new(raw_deflate=False)  # gzip allows several members back to back
                    self.started = True
                    data = rest
                    continue
                return
            data = self.d.unconsumed_tail

    def finish(self) -> Iterator[bytes]:
        out = self.d.flush(STEP)
        if out:
            yield out


class BoundedDecoder:
    """Feeds raw chunks through the encoding layers and returns decoded bytes, at most ``max_bytes``."""

    def __init__(self, content_encoding: str | None, max_bytes: int) -> None:
        self.stages = [_Stage(e) for e in reversed(encodings(content_encoding))]
        self.max_bytes = max_bytes
        self.size = 0
        self._parts: list[bytes] = []

    def _through(self, index: int, pieces: Iterable[bytes]) -> Iterator[bytes]:
        if index == len(self.stages):
            yield from pieces
            return
        stage = self.stages[index]
        for piece in pieces:
            yield from self._through(index + 1, stage.feed(piece))

    def _keep(self, pieces: Iterable[bytes]) -> None:
        for piece in pieces:
            self.size += len(piece)
            if self.size > self.max_bytes:
                raise BodyTooLarge(f"decoded body passed {self.max_bytes} bytes")
            self._parts.append(piece)

    def feed(self, raw: bytes) -> None:
        self._keep(self._through(0, [raw]))

    def finish(self) -> bytes:
        for index, stage in enumerate(self.stages):
            self._keep(self._through(index + 1, stage.finish()))
        return b"".join(self._parts)
