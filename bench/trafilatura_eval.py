"""trafilatura's evaluation set (dev set, issue 12): newsmill vs bare trafilatura, side by side, same run.

Reads ``../shared/benchmarks/trafilatura-eval`` (``html/<id>.html.gz`` + ``truth.json``; never committed)
and scores, per its README:

- text: whitespace (any run -> one space) and Unicode (NFKC) normalised in snippets and text; every
  ``with`` snippet found in the text is a TP, missing a FN; every ``without`` snippet found is a FP.
  Summed over all pages -> precision, recall, F1. ``empty``: pages with no text at all;
- authors: the set of names (annotation: a list, or names joined with "; ") equals the extracted set
  after whitespace normalisation and case folding (scored over pages that annotate an author);
- date: the first 10 characters of the published date equal the annotation (pages that annotate one);
- title: exact after whitespace normalisation and case folding (pages that annotate one).

Systems:

- ``newsmill``: :func:`newsmill.tasks.extract.extract_page` in-process, as ``newsmill extract FILE --url
  URL`` runs it (body decoded by ``tasks.fetch.decode_body``, bundled rules, ``[extract]`` defaults); the
  URL from ``truth.json`` (``hard::`` ids get ``https://example.invalid/<file>``). The date is
  ``Article.published_date`` when the record has that field, else the first 10 chars of ``published_at``.
- ``trafilatura``: ``trafilatura.bare_extraction(html_bytes, url=URL, with_metadata=True)``, defaults.

Pages run in a pool of 2 worker processes; each worker runs both systems on a page one after the other,
so the per-page time ratio (sum of newsmill extraction time / sum of trafilatura's) is fair under load;
the order alternates from page to page, as the second system on a page runs partly on the first one's warm
library caches. ``bench/extract_speed.py`` measures the same ratio with each system in a process of its own.

Usage::

    .venv/bin/python bench/trafilatura_eval.py [--ids 0089,0226] [--json out.json] [--workers 2] [--only newsmill]

``--json`` dumps the summary and per-page results (empty ids, missed ``with`` and leaked ``without``
snippets, author/date/title mismatches with both values) for analysis.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time
import unicodedata
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow ``python bench/trafilatura_eval.py`` from a checkout
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "trafilatura-eval"
SYSTEMS = ("newsmill", "trafilatura")
_WS = re.compile(r"\s+")


def norm_text(s: str | None) -> str:
    """NFKC + whitespace runs collapsed (text scoring)."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", s or "")).strip()


def norm_meta(s: str | None) -> str:
    """Whitespace runs collapsed + case folding (metadata scoring)."""
    return _WS.sub(" ", s or "").strip().casefold()


def author_set(value) -> frozenset[str]:
    """Annotation or extracted authors as a set: a list/tuple of names, or names joined with ';'."""
    if not value:
        return frozenset()
    items = list(value) if isinstance(value, (list, tuple)) else str(value).split(";")
    out = set()
    for item in items:
        for name in (str(item).split(";") if isinstance(value, (list, tuple)) else [item]):
            n = norm_meta(name)
            if n:
                out.add(n)
    return frozenset(out)


def page_url(pid: str, truth: dict) -> str:
    url = truth.get("url") or ""
    if not url or url.startswith("hard::"):
        name = (truth.get("source_file") or f"{pid}.html").replace(" ", "_")
        return f"https://example.invalid/{name}"
    return url


# --- worker side -----------------------------------------------------------------------------------

_W: dict = {}


def _init_worker(data_dir: str) -> None:
    import logging

    import trafilatura  # noqa: F401 - imported before timing

    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.config import ExtractSettings
    from newsmill.tasks.extract import extract_page
    from newsmill.tasks.fetch import decode_body

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    logging.getLogger("htmldate").setLevel(logging.ERROR)
    _W.update(data=Path(data_dir), rules=load_rules(), settings=ExtractSettings(), extract_page=extract_page,
              decode_body=decode_body)
    # warm-up outside the timings (lazy imports, language model, rule compilation, htmldate tables)
    para = "<p>" + "The council met on Tuesday and agreed the budget for the coming year. " * 6 + "</p>"
    warm = (f"<html lang='en'><head><title>Warm-up</title></head><body><article><h1>Warm-up</h1>{para}{para}"
            f"</article></body></html>").encode()
    _run_newsmill(warm, "https://example.invalid/warm-up")
    _run_trafilatura(warm, "https://example.invalid/warm-up")


def _run_newsmill(html: bytes, url: str) -> dict:
    t0 = time.perf_counter()
    text, _enc = _W["decode_body"](html, None)
    res = _W["extract_page"](text, url, rules=_W["rules"], settings=_W["settings"])
    secs = time.perf_counter() - t0
    art = res.article
    if art is None:
        return {"text": "", "authors": [], "date": None, "title": None, "seconds": secs,
                "outcome": res.outcome, "error": res.error, "text_path": None}
    date = getattr(art, "published_date", None)
    if date is None and art.published_at is not None:
        date = art.published_at.isoformat()[:10]
    elif date is not None:
        date = str(date)[:10]
    return {"text": art.text, "authors": list(art.authors), "date": date, "title": art.title, "seconds": secs,
            "outcome": res.outcome, "error": None, "text_path": getattr(art, "text_path", None)}


def _run_trafilatura(html: bytes, url: str) -> dict:
    import trafilatura

    t0 = time.perf_counter()
    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    except Exception as exc:  # noqa: BLE001 - scored as an empty page
        doc, err = None, f"{type(exc).__name__}: {exc}"
    else:
        err = None
    secs = time.perf_counter() - t0
    if doc is None:
        return {"text": "", "authors": [], "date": None, "title": None, "seconds": secs, "outcome": "none",
                "error": err}
    return {"text": doc.text or "", "authors": sorted(author_set(doc.author)), "date": (doc.date or None),
            "title": doc.title, "seconds": secs, "outcome": "ok", "error": None}


def _score_page(truth: dict, out: dict) -> dict:
    text = norm_text(out["text"])
    missed = [s for s in truth.get("with") or [] if norm_text(s) not in text]
    leaked = [s for s in truth.get("without") or [] if norm_text(s) in text]
    n_with = len(truth.get("with") or [])
    n_without = len(truth.get("without") or [])
    row = {"tp": n_with - len(missed), "fn": len(missed), "fp": len(leaked), "tn": n_without - len(leaked),
           "empty": not text, "missed": missed, "leaked": leaked, "seconds": out["seconds"],
           "outcome": out["outcome"], "error": out.get("error"), "chars": len(out["text"] or "")}
    if "text_path" in out:
        row["text_path"] = out["text_path"]
    if truth.get("author"):
        want = author_set(truth["author"])
        got = author_set(out["authors"])
        row["author_ok"] = want == got
        row["author"] = {"want": sorted(want), "got": sorted(got)}
    if truth.get("date"):
        got = (out["date"] or "")[:10]
        row["date_ok"] = got == truth["date"][:10]
        row["date"] = {"want": truth["date"][:10], "got": got or None}
    if truth.get("title"):
        row["title_ok"] = norm_meta(out["title"]) == norm_meta(truth["title"])
        row["title"] = {"want": truth["title"], "got": out["title"]}
    return row


def _work(item: tuple[str, dict, tuple[str, ...]]) -> tuple[str, dict]:
    pid, truth, systems = item
    with gzip.open(_W["data"] / "html" / f"{pid}.html.gz", "rb") as fh:
        html = fh.read()
    url = page_url(pid, truth)
    runners = {"newsmill": _run_newsmill, "trafilatura": _run_trafilatura}
    # the second system on a page runs partly on the first one's warm library caches (trafilatura's and
    # htmldate's LRU caches): every other page the order is reversed, so neither gets the advantage
    order = systems if _page_index(pid) % 2 == 0 else tuple(reversed(systems))
    scores = {name: _score_page(truth, runners[name](html, url)) for name in order}
    return pid, {name: scores[name] for name in systems}


def _page_index(pid: str) -> int:
    digits = "".join(c for c in pid if c.isdigit())
    return int(digits) if digits else sum(map(ord, pid))


# --- main side -------------------------------------------------------------------------------------


def summarise(per_page: dict[str, dict], truth: dict, systems: tuple[str, ...] = SYSTEMS) -> dict:
    n_auth = sum(1 for pid in per_page if truth[pid].get("author"))
    n_date = sum(1 for pid in per_page if truth[pid].get("date"))
    n_title = sum(1 for pid in per_page if truth[pid].get("title"))
    out = {}
    for name in systems:
        rows = [per_page[pid][name] for pid in per_page]
        tp = sum(r["tp"] for r in rows)
        fn = sum(r["fn"] for r in rows)
        fp = sum(r["fp"] for r in rows)
        p = tp / (tp + fp) if tp + fp else 0.0
        r_ = tp / (tp + fn) if tp + fn else 0.0
        out[name] = {
            "f1": 2 * p * r_ / (p + r_) if p + r_ else 0.0, "precision": p, "recall": r_,
            "tp": tp, "fn": fn, "fp": fp,
            "empty": sum(1 for r in rows if r["empty"]),
            "authors": sum(1 for r in rows if r.get("author_ok")), "authors_of": n_auth,
            "dates": sum(1 for r in rows if r.get("date_ok")), "dates_of": n_date,
            "titles": sum(1 for r in rows if r.get("title_ok")), "titles_of": n_title,
            "seconds": sum(r["seconds"] for r in rows), "pages": len(rows),
        }
    if "newsmill" in out and "trafilatura" in out:
        t = out["trafilatura"]["seconds"]
        out["time_ratio_newsmill_vs_trafilatura"] = out["newsmill"]["seconds"] / t if t else None
    return out


def run(data_dir: Path = DEFAULT_DATA, ids: list[str] | None = None, workers: int = 2,
        systems: tuple[str, ...] = SYSTEMS) -> tuple[dict, dict]:
    truth = json.loads((data_dir / "truth.json").read_text("utf-8"))
    pids = sorted(truth) if not ids else [i for i in ids if i in truth]
    missing = [i for i in (ids or []) if i not in truth]
    if missing:
        raise SystemExit(f"unknown ids: {', '.join(missing)}")
    items = [(pid, truth[pid], systems) for pid in pids]
    per_page: dict[str, dict] = {}
    if workers <= 1:
        _init_worker(str(data_dir))
        for item in items:
            pid, res = _work(item)
            per_page[pid] = res
    else:
        ctx = get_context("forkserver" if os.name == "posix" else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(str(data_dir),)) as pool:
            for pid, res in pool.imap_unordered(_work, items, chunksize=4):
                per_page[pid] = res
    per_page = dict(sorted(per_page.items()))
    return summarise(per_page, truth, systems), per_page


def print_table(summary: dict, systems: tuple[str, ...] = SYSTEMS) -> None:
    print(f"{'system':12} {'F1':>6} {'P':>6} {'R':>6} {'empty':>5} {'authors':>11} {'dates':>11} {'titles':>11}"
          f" {'ms/page':>8}")
    for name in systems:
        s = summary[name]
        ms = 1000 * s["seconds"] / s["pages"] if s["pages"] else 0.0
        print(f"{name:12} {s['f1']:6.3f} {s['precision']:6.3f} {s['recall']:6.3f} {s['empty']:>5} "
              f"{s['authors']:>5}/{s['authors_of']:<5} {s['dates']:>5}/{s['dates_of']:<5} "
              f"{s['titles']:>5}/{s['titles_of']:<5} {ms:8.1f}")
    ratio = summary.get("time_ratio_newsmill_vs_trafilatura")
    if ratio:
        print(f"newsmill per-page extraction time / bare_extraction(with_metadata=True): {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--ids", action="append", default=None,
                    help="page ids to run (comma-separated, repeatable); default all")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="write summary + per-page results")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--only", choices=SYSTEMS, default=None, help="run one system (no time ratio)")
    args = ap.parse_args(argv)
    if not (args.data / "truth.json").exists():
        print(f"no benchmark data in {args.data}", file=sys.stderr)
        return 2
    ids = [i.strip() for chunk in args.ids for i in chunk.split(",") if i.strip()] if args.ids else None
    systems = (args.only,) if args.only else SYSTEMS
    summary, per_page = run(args.data, ids, args.workers, systems)
    print_table(summary, systems)
    if args.json:
        def ids_where(name, pred):
            return [pid for pid, r in per_page.items() if pred(r[name])]

        lists = {name: {
            "empty": ids_where(name, lambda r: r["empty"]),
            "author_mismatch": ids_where(name, lambda r: r.get("author_ok") is False),
            "date_mismatch": ids_where(name, lambda r: r.get("date_ok") is False),
            "title_mismatch": ids_where(name, lambda r: r.get("title_ok") is False),
        } for name in systems}
        args.json.write_text(json.dumps({"summary": summary, "lists": lists, "pages": per_page},
                                        ensure_ascii=False, indent=1), "utf-8")
        print(f"per-page results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
