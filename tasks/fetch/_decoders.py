"""Bounded Content-Encoding decoders (gzip, deflate, br): decoded bytes are capped while streaming, so a
compression bomb stops within one 64 KiB step of the cap."""

from __future__ import annotations

import zlib
from typing import Iterator

try:  # pragma: no cover - brotli is a declared dependency
    import brotli
except ImportError:  # pragma: no cover
    brotli = None

READ_STEP = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate, br" if brotli else "gzip, deflate"


class TooLarge(Exception):
    """More decoded bytes than the cap."""


class DecodingError(Exception):
    """An unsupported or corrupt content coding."""


class _Layer:
    """One content-coding layer, producing output in steps of at most READ_STEP bytes."""

    def __init__(self, coding: str):
        self.coding = coding
        self._first = True
        if coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._z = None  # zlib or raw deflate, decided on the first bytes
        elif coding == "br":
            if brotli is None:  # pragma: no cover
                raise DecodingError("br content-encoding but brotli is not installed")
            self._br = brotli.Decompressor()
        else:
            raise DecodingError(f"unsupported Content-Encoding {coding!r}")

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            if self.coding == "br":
                yield from self._feed_br(data)
            else:
                yield from self._feed_zlib(data)
        except (zlib.error, brotli.error if brotli else zlib.error) as exc:
            raise DecodingError(f"{self.coding}: {exc}") from None

    def _feed_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            wbits = zlib.MAX_WBITS if (len(data) >= 2 and (data[0] & 0x0F) == 8
                                       and ((data[0] << 8) | data[1]) % 31 == 0) else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits)
        buf = data
        while buf:
            if self._z.eof:  # concatenated gzip members
                if self.coding == "deflate" or not buf.strip(b"\x00"):
                    return
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = self._z.decompress(buf, READ_STEP)
            buf = self._z.unused_data if self._z.eof else self._z.unconsumed_tail
            if out:
                yield out
        # drain output still held inside zlib
        while not self._z.eof:
            out = self._z.decompress(b"", READ_STEP)
            if not out:
                break
            yield out

    def _feed_br(self, data: bytes) -> Iterator[bytes]:
        out = self._br.process(data, output_buffer_limit=READ_STEP)
        if out:
            yield out
        while not self._br.can_accept_more_data():
            out = self._br.process(b"", output_buffer_limit=READ_STEP)
            if not out:
                break
            yield out

    def finished(self) -> bool:
        if self.coding == "br":
            return self._br.is_finished()
        return self._z is None or self._z.eof


class BoundedDecoder:
    """Content-Encoding layers (applied in reverse order) with a cap on decoded bytes."""

    def __init__(self, content_encoding: str | None, cap: int):
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        self.layers = [_Layer(c) for c in reversed(codings)]
        self.cap = cap
        self.total = 0
        self.parts: list[bytes] = []

    def _through(self, data: bytes, i: int) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        for piece in self.layers[i].feed(data):
            yield from self._through(piece, i + 1)

    def feed(self, data: bytes) -> None:
        for piece in self._through(data, 0):
            self.total += len(piece)
            if self.total > self.cap:
                raise TooLarge(f"decoded body exceeds {self.cap} bytes")
            self.parts.append(piece)

    def complete(self) -> bool:
        return all(layer.finished() for layer in self.layers)

    def body(self) -> bytes:
        return b"".join(self.parts)


def decode_capped(data: bytes, content_encoding: str, cap: int) -> tuple[bytes, bool]:
    """``data`` through the bounded decoders of ``content_encoding`` (e.g. ``"gzip"``): ``(decoded, complete)``;
    ``complete`` is False when the stream ends before its end marker. Raises ``TooLarge`` (more than ``cap``
    decoded bytes, stopped within one step of the cap) or ``DecodingError``."""
    dec = BoundedDecoder(content_encoding, cap)
    dec.feed(data)
    return dec.body(), dec.complete()
