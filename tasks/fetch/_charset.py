"""Body bytes to text the way a browser decodes them (see ``decode_body``)."""

from __future__ import annotations

import codecs
import functools
import logging
import re

import webencodings

log = logging.getLogger(__name__)

_CT_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
PRESCAN_BYTES = 1024  # the HTML encoding prescan window (a <meta charset> must sit in the first 1024 bytes)
LATE_DECLARATION_BYTES = 8192  # a later declaration is still a hint for a page that is not UTF-8
_DETECT_BYTES = 200_000
# WHATWG decoders that are wider than the Python codec webencodings names (the gbk decoder is gb18030's)
_WIDER_DECODER = {"gbk": "gb18030"}


def _decoder(label: str | None, *, in_document: bool = False) -> str | None:
    """Python codec that decodes like a browser for an encoding label, or None when the label is not usable.

    Only WHATWG encoding labels count (``webencodings``): any other name Python happens to know --
    ``undefined`` and ``punycode`` (which raise), ``unicode_escape``, ``cp037``, ``utf-7`` (which decode to
    text no browser shows) -- is ignored like an unknown label, and so is the ``replacement`` encoding.
    ``x-user-defined`` (bytes 0x80-0xFF to the Private Use Area, never text) is read as windows-1252, as
    the HTML prescan does; an in-document UTF-16 declaration means UTF-8."""
    if not label:
        return None
    enc = webencodings.lookup(label)
    if enc is None or enc.name == "replacement":
        return None
    name = enc.name
    if name == "x-user-defined":
        name = "windows-1252"
    elif in_document and name in ("utf-16le", "utf-16be"):
        name = "utf-8"
    return _WIDER_DECODER.get(name) or webencodings.lookup(name).codec_info.name


def _decoder_for_codec(codec: str) -> str | None:
    """A detector's Python codec name (``latin_1``, ``mac_cyrillic``, ``cp037``...) as a WHATWG decoder."""
    if dec := _decoder(codec) or _decoder(codec.replace("_", "-")):
        return dec
    try:
        name = codecs.lookup(codec).name
    except LookupError:
        return None
    return _decoder(name) or _python_to_whatwg().get(name)


@functools.cache
def _python_to_whatwg() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in sorted(set(webencodings.LABELS.values())):
        if (dec := _decoder(name)) is not None:
            out.setdefault(codecs.lookup(dec).name, dec)
    return out


def _windows_1252_table() -> dict[int, str]:
    table = {}
    for i in range(0x80, 0xA0):
        try:
            table[i] = bytes([i]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81 0x8D 0x8F 0x90 0x9D: WHATWG keeps the C1 control
            pass
    return table


_WINDOWS_1252 = _windows_1252_table()


def _windows_1252(body: bytes) -> str:
    """WHATWG windows-1252: total (the five bytes cp1252 leaves undefined decode to their C1 controls)."""
    return body.decode("latin-1").translate(_WINDOWS_1252)


def _detector():
    """bs4's ``EncodingDetector``, imported on first use: importing bs4 loads soupsieve (0.1-0.2 s), which
    the processes that never decode a page (the light CLI commands import this module) should not pay."""
    from bs4.dammit import EncodingDetector

    return EncodingDetector


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _CT_CHARSET.search(content_type)
    return m.group(1) if m else None


def _bom(body: bytes) -> tuple[bytes, str | None]:
    """``(body without BOM, codec)`` -- the WHATWG BOMs (UTF-8, UTF-16LE, UTF-16BE); there is no UTF-32."""
    rest, label = _detector().strip_byte_order_mark(body)
    if label == "utf-32le":  # FF FE 00 00: a UTF-16LE BOM followed by U+0000
        return body[2:], "utf-16-le"
    if label == "utf-32be":  # 00 00 FE FF is no BOM on the web
        return body, None
    return rest, _decoder(label)


def _detect(body: bytes) -> str | None:
    try:
        import charset_normalizer

        # statistics only: the declarations were weighed above (its own preemptive pass would obey any label)
        best = charset_normalizer.from_bytes(body[:_DETECT_BYTES], preemptive_behaviour=False).best()
    except Exception as exc:  # pragma: no cover - detection is best effort, reason kept in the log
        log.debug("charset detection failed: %s", exc)
        return None
    return _decoder_for_codec(best.encoding) if best is not None and best.encoding else None


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a document body to text: ``(text, codec)``. Total: no body and no label makes it raise.

    The WHATWG encoding sniffing order, with bs4's ``EncodingDetector`` finding the BOM and the declarations
    and ``webencodings`` mapping labels to decoders (see ``_decoder``: only WHATWG labels count):

    1. a BOM wins over every label (decoded with U+FFFD for the odd broken sequence, as browsers do);
    2. the HTTP header charset; 3. ``<meta charset>``/``http-equiv``/XML declaration in the first 1024
       bytes (the prescan); 4. strict UTF-8; 5. a declaration later in the first 8 KiB (a browser
       re-decodes when its parser meets one); 6. detection (charset_normalizer); 7. windows-1252.

    Each label must decode the whole body strictly: a wrong declaration falls through to the next step
    instead of producing U+FFFD mojibake."""
    if not body:
        return "", "utf-8"
    rest, bom = _bom(body)
    if bom is not None:
        return rest.decode(bom, "replace"), bom
    tried: set[str] = set()

    def attempt(codec: str | None) -> str | None:
        if codec is None or codec in tried:
            return None
        tried.add(codec)
        try:
            return body.decode(codec)
        except UnicodeError:  # UnicodeDecodeError; any other UnicodeError counts the same (total)
            return None

    detector = _detector()
    steps = (
        lambda: _decoder(charset_from_content_type(content_type)),
        lambda: _decoder(detector.find_declared_encoding(body[:PRESCAN_BYTES], is_html=True,
                                                         search_entire_document=True), in_document=True),
        lambda: "utf-8",
        lambda: _decoder(detector.find_declared_encoding(body[:LATE_DECLARATION_BYTES], is_html=True,
                                                         search_entire_document=True), in_document=True),
        lambda: _detect(body),
    )
    for step in steps:
        codec = step()
        if (text := attempt(codec)) is not None:
            return text, codec
    return _windows_1252(body), "cp1252"
