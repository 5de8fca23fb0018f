"""A hostile-input corpus, generated here (nothing downloaded): pages, HTTP responses and WARC files built to
break newsmill the way the adversarial review of issue 15 did. ``test_hostile.py`` runs every case through
the real entry points (``decode_body``, the fetcher against a loopback server, ``newsmill extract`` and
``newsmill import-warc`` on a WARC file, a real ingest).

Extend it: add a generator function and its cases here (a case carries the bytes *and* what a correct
reader must and must not produce), then a test in ``test_hostile.py``.

Charset cases (issue 15 item 1): a lying or unknown encoding label must never raise, never sink the other
records of a batch, and never decode to text a browser would not show: only WHATWG encoding labels count;
a BOM beats every label; a ``<meta charset>`` counts when it sits in the first 1024 bytes (the HTML prescan).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

WORDS = ("council harbour budget school election winter festival library bridge market railway museum "
         "hospital research coast village ministry report season orchestra theatre weather energy "
         "transport housing policy ferry").split()


@dataclass(frozen=True)
class CharsetCase:
    """One response whose Content-Type / BOM / ``<meta>`` label is hostile.

    ``expect``: strings the decoded page (and the extracted article text) must contain;
    ``forbid``: strings that appear only when the hostile label was obeyed (mojibake, markup a
    ``utf-7`` label would smuggle in); ``encoding``: the codec ``decode_body`` must report, when pinned."""

    name: str
    content_type: str
    body: bytes
    expect: tuple[str, ...]
    forbid: tuple[str, ...] = ()
    encoding: str | None = None

    @property
    def path(self) -> str:
        return f"/news/{self.name}.html"


def article(name: str, special: str, *, head: str = "", meta: str = '<meta charset="utf-8">',
            seed: int = 0, base: str = "https://www.hostile.example") -> str:
    """A news article page in the style of a small publisher, with ``special`` as one of its paragraphs.

    ``meta`` is the charset declaration written first in ``<head>``; ``head`` goes before it (to push a
    declaration past the prescan window)."""
    rng = random.Random(seed)
    paras = ["<p>" + " ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + ".</p>" for _ in range(4)]
    paras.insert(2, f"<p>{special}</p>")
    body = "\n".join(paras)
    return f"""<!doctype html>
<html lang="en"><head>{head}{meta}
<title>The {name.replace('_', ' ')} story - Hostile Gazette</title>
<link rel="canonical" href="{base}/news/{name}.html">
<meta name="author" content="Jo Example">
</head><body><header><nav><a href="/">Home</a> <a href="/local">Local</a></nav></header>
<article><h1>The {name.replace('_', ' ')} story</h1>
{body}
</article><footer><p>Copyright 2024 Hostile Gazette</p></footer></body></html>"""


CAFE = "Caf\u00e9 owners said the na\u00efve plan was d\u00e9j\u00e0 vu for the harbour."
QUOTED = "\u201cQuoted\u201d residents \u2013 mostly fishermen \u2013 agreed."
RUSSIAN = "\u041f\u0440\u0438\u0432\u0435\u0442 \u0441 \u043d\u0430\u0431\u0435\u0440\u0435\u0436\u043d\u043e\u0439."
UTF7_SCRIPT = "Comment: +ADw-script+AD4-alert(1)+ADw-/script+AD4- was posted."
LONG_STYLE = "<style>" + " ".join(f".c{i}{{margin:{i}px}}" for i in range(150)) + "</style>\n"


def charset_cases() -> list[CharsetCase]:
    """Responses with hostile charset labels; each is a readable article once decoded the way a browser would."""
    utf8 = lambda name, special, **kw: article(name, special, **kw).encode("utf-8")  # noqa: E731
    html = "text/html"
    cases = [
        # a Python codec that always raises a plain UnicodeError (not UnicodeDecodeError)
        CharsetCase("header_undefined", "text/html; charset=undefined", utf8("header_undefined", CAFE),
                    expect=(CAFE,), encoding="utf-8"),
        CharsetCase("meta_punycode", html,
                    article("meta_punycode", "Harbour ferry timetable changes.",
                            meta='<meta charset="punycode">').encode("ascii"),
                    expect=("Harbour ferry timetable changes.",)),
        # a Python codec that decodes, but to text no browser shows (escapes, latin-1 mojibake)
        CharsetCase("header_unicode_escape", "text/html; charset=unicode_escape",
                    utf8("header_unicode_escape", CAFE + r" The path is C:\new\x41."),
                    expect=(CAFE, r"C:\new\x41"), forbid=("Caf\u00c3",), encoding="utf-8"),
        CharsetCase("meta_cp037", html, utf8("meta_cp037", CAFE, meta='<meta charset="cp037">'),
                    expect=(CAFE,), encoding="utf-8"),
        # UTF-7 is not a web encoding: obeying it turns +ADw- into markup (an XSS vector)
        CharsetCase("header_utf7", "text/html; charset=utf-7",
                    article("header_utf7", UTF7_SCRIPT, meta="").encode("ascii"),
                    expect=("+ADw-script+AD4-",), forbid=("<script>alert",)),
        # x-user-defined maps bytes 0x80-0xFF to the Private Use Area; the HTML prescan reads it as windows-1252
        CharsetCase("meta_x_user_defined", html,
                    article("meta_x_user_defined", CAFE + " " + QUOTED,
                            meta='<meta charset="x-user-defined">').encode("cp1252"),
                    expect=(CAFE, QUOTED), encoding="cp1252"),
        # a BOM beats the header; one stray byte does not turn the whole page into header-charset mojibake
        CharsetCase("bom_vs_header", "text/html; charset=windows-1252",
                    b"\xef\xbb\xbf" + utf8("bom_vs_header", CAFE + " Ferry @STRAY@").replace(b"@STRAY@", b"\x93"),
                    expect=(CAFE,), forbid=("\u00ef\u00bb\u00bf", "Caf\u00c3"), encoding="utf-8"),
        CharsetCase("bom_utf16_vs_header", "text/html; charset=utf-8",
                    b"\xff\xfe" + article("bom_utf16_vs_header", CAFE).encode("utf-16-le"),
                    expect=(CAFE,), encoding="utf-16-le"),
        # a declaration past the first 1024 bytes is not the prescan's: a UTF-8 page stays UTF-8 ...
        CharsetCase("late_meta", html,
                    utf8("late_meta", CAFE + " " + RUSSIAN, head=LONG_STYLE, meta='<meta charset="windows-1251">'),
                    expect=(CAFE, RUSSIAN), forbid=("\u0420\u045f",), encoding="utf-8"),
        # ... while a legacy page whose late declaration is the only hint still decodes with it
        CharsetCase("late_meta_legacy", html,
                    article("late_meta_legacy", RUSSIAN, head=LONG_STYLE,
                            meta='<meta charset="windows-1251">').encode("cp1251"),
                    expect=(RUSSIAN,), encoding="cp1251"),
    ]
    return cases


def good_pages(n: int = 2) -> list[CharsetCase]:
    """Plain, well-labelled articles that go in the same WARC/batch as the hostile ones."""
    return [CharsetCase(f"good_{i}", "text/html; charset=utf-8",
                        article(f"good_{i}", f"Ordinary story {i} about the ferry.", seed=100 + i).encode("utf-8"),
                        expect=(f"Ordinary story {i} about the ferry.",)) for i in range(n)]


def write_warc(path: Path, records: Iterable[tuple[str, str, bytes]], *,
               date: str = "2024-05-01T08:00:00Z") -> Path:
    """A gzipped WARC with one ``response`` record per ``(url, content_type, body)``."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "newsmill-tests/hostile"}))
        for url, ctype, body in records:
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                                http_headers=http, warc_headers_dict={"WARC-Date": date}))
    return path


def charset_warc(path: Path, base: str = "https://www.hostile.example") -> tuple[Path, list[CharsetCase]]:
    """A WARC mixing good articles and every hostile charset case (good ones first and last)."""
    good = good_pages(2)
    cases = [good[0], *charset_cases(), good[1]]
    write_warc(path, [(base + c.path, c.content_type, c.body) for c in cases])
    return path, cases


# ---------------------------------------------------------------------------------------------- broken WARC
# (issue 15 item 3, helper 15a): a record without WARC-Target-URI, a file cut inside its last gzip member.
# Article pages carry a unique marker word, so raw bytes can be searched for on disk (takedown tests).


def article_html(url: str, marker: str, seed: int = 0) -> str:
    """A news article page (masthead, nav, byline, five paragraphs, footer); ``marker`` is a unique word in
    the title and in the body text."""
    rng = random.Random(seed)
    paras = "\n".join(
        "<p>" + " ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + (f" {marker}" if i == 2 else "")
        + ".</p>" for i in range(5))
    title = f"{marker}: " + " ".join(rng.choice(WORDS) for _ in range(5)).capitalize()
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="canonical" href="{url}"></head><body>
<header><a href="/">The Harbour Courier</a></header><nav><a href="/local">Local</a> <a href="/sport">Sport</a></nav>
<article><h1>{title}</h1><p class="byline">By Staff Reporter</p>
{paras}
</article><footer><p>&copy; 2025 The Harbour Courier. All rights reserved.</p></footer></body></html>"""


def warc_response(url: str | None, body: bytes, date: str = "2025-03-04T05:06:07Z", *,
                  ctype: str = "text/html; charset=utf-8", gzip_member: bool = True) -> bytes:
    """One WARC ``response`` record (its own gzip member unless ``gzip_member`` is false). ``url=None``
    writes the record and then removes its ``WARC-Target-URI`` header line (byte surgery: warcio cannot
    write such a record), keeping ``Content-Length`` and the block intact."""
    import gzip

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    target = url or "http://placeholder.invalid/x"
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=False)
    http = StatusAndHeaders("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))],
                            protocol="HTTP/1.1")
    w.write_record(w.create_warc_record(target, "response", payload=io.BytesIO(body), length=len(body),
                                        http_headers=http, warc_headers_dict={"WARC-Date": date}))
    raw = buf.getvalue()
    if url is None:
        line = f"WARC-Target-URI: {target}\r\n".encode()
        assert raw.count(line) == 1
        raw = raw.replace(line, b"")
    return gzip.compress(raw, 6) if gzip_member else raw


def warc_request(url: str, date: str = "2025-03-04T05:06:07Z", *, gzip_member: bool = True) -> bytes:
    import gzip

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=False)
    http = StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", "example")], is_http_request=True)
    w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b""), length=0, http_headers=http,
                                        warc_headers_dict={"WARC-Date": date}))
    return gzip.compress(buf.getvalue(), 6) if gzip_member else buf.getvalue()


@dataclass
class HostileWarc:
    path: Path
    good: list  # URLs of the complete HTML responses, in file order (all must be kept)
    no_uri_marker: str  # body marker of the record without WARC-Target-URI
    torn_url: str | None  # URL of the last record, whose member is cut (None when not cut)
    markers: dict  # url -> marker


def hostile_warc(path: Path, *, n_before: int = 3, n_after: int = 3, cut: bool = True,
                 gzip_members: bool = True, host: str = "news.courier.example") -> HostileWarc:
    """``n_before`` good HTML responses (each after its request record), one response without
    ``WARC-Target-URI``, ``n_after`` good responses, then a last response cut inside its HTML (after its
    WARC and HTTP headers), as a download cut short leaves it: a ``.warc.gz`` (one gzip member per record,
    the last member cut) or, with ``gzip_members=False``, a plain ``.warc``."""
    import gzip
    import zlib

    parts: list[bytes] = []
    good: list[str] = []
    markers: dict[str, str] = {}

    def add(i: int) -> None:
        url = f"https://{host}/local/story-{i}.html"
        marker = f"zqmarker{i:03d}x"
        parts.append(warc_request(url, gzip_member=gzip_members))
        parts.append(warc_response(url, article_html(url, marker, i).encode(), gzip_member=gzip_members))
        good.append(url)
        markers[url] = marker

    for i in range(n_before):
        add(i)
    no_uri_marker = "zqnourimarker"
    parts.append(warc_response(None, article_html("https://x.invalid/", no_uri_marker, 99).encode(),
                               gzip_member=gzip_members))
    for i in range(n_before, n_before + n_after):
        add(i)
    torn_url = None
    if cut:
        torn_url = f"https://{host}/local/story-torn.html"
        last = warc_response(torn_url, article_html(torn_url, "zqtornmarker", 7).encode(), gzip_member=False)
        keep = last.index(b"<article>") + 40  # WARC and HTTP headers complete, body cut in the article
        if gzip_members:
            member = gzip.compress(last, 6)
            n = next(n for n in range(20, len(member))
                     if len(zlib.decompressobj(31).decompress(member[:n])) > keep)
            parts.append(member[:n])
        else:
            parts.append(last[:keep])
    path.write_bytes(b"".join(parts))
    return HostileWarc(path=path, good=good, no_uri_marker=no_uri_marker, torn_url=torn_url, markers=markers)


def gunzip_members(data: bytes) -> bytes:
    """All decompressed bytes of a multi-member gzip file, a torn last member included as far as it goes
    (for grepping raw archive files for a marker)."""
    import zlib

    out = []
    while data:
        d = zlib.decompressobj(31)
        try:
            out.append(d.decompress(data))
        except zlib.error:
            break
        if not d.eof:
            break
        data = d.unused_data
    return b"".join(out)


# ---------------------------------------------------------------------------------------------- huge pages
# (issue 15 item 4, helper 15b): pages under the 10 MB body cap whose structure makes extraction slow —
# many blocks (quadratic XPath unions in libxml2), one element with a huge attribute count (libxml2's
# duplicate-attribute check is quadratic while parsing), deep nesting (libxml2 caps depth at 255).


def _page(body: str, title: str = "A very long page") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><article><h1>{title}</h1>{body}</article></body></html>")


def many_blocks(n: int, block: str = "<p>x</p>") -> str:
    """``n`` copies of ``block`` in one article (100,000 ``<p>x</p>`` is 0.8 MB)."""
    return _page(block * n)


def many_wrapped_blocks(n: int) -> str:
    """``n`` paragraphs, each in its own ``<div>``: two large node sets of block tags."""
    return _page("<div><p>x</p></div>" * n)


def many_attributes(n: int) -> str:
    """One element with ``n`` attributes (200,000 is 2.3 MB)."""
    attrs = " ".join(f'data-a{i}="v"' for i in range(n))
    return _page(f"<div {attrs}>Council harbour budget.</div>")


def deep_nesting(depth: int, inner: str = "<p>Council harbour budget, winter festival.</p>", n: int = 1,
                 tag: str = "div") -> str:
    """``inner`` (``n`` times) inside ``depth`` nested ``tag`` elements."""
    return _page(f"<{tag}>" * depth + inner * n + f"</{tag}>" * depth)


def nested_long_article(depth: int, paragraphs: int, seed: int = 0) -> str:
    """A real-looking article (``paragraphs`` paragraphs of ~45 words) inside ``depth`` nested sections,
    each with a short caption of its own: every level is a block, only the innermost paragraphs are short."""
    rng = random.Random(seed)
    paras = "".join("<p>" + " ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + ".</p>"
                    for _ in range(paragraphs))
    opens = "".join(f'<section class="level-{i}"><h2>Part {i}</h2>' for i in range(depth))
    return _page(opens + paras + "</section>" * depth)


def story(url: str, marker: str, seed: int = 0) -> str:
    """An ordinary article to go in a batch with the huge pages: ``marker`` is a word of its third
    paragraph, the rest varies with ``seed``."""
    rng = random.Random(seed)
    paras = "\n".join("<p>" + " ".join(rng.choice(WORDS) for _ in range(45)).capitalize()
                      + (f" {marker}" if i == 2 else "") + ".</p>" for i in range(5))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Story {seed}</title>
<link rel="canonical" href="{url}"></head><body><header><a href="/">The Harbour Courier</a></header>
<article><h1>Story {seed}</h1>{paras}</article>
<footer><p>&copy; 2025 The Harbour Courier</p></footer></body></html>"""
