"""Stories benchmark: pairwise precision and recall of "same story" on a labelled set built from AEB.

Every AEB page (``shared/benchmarks/aeb``) is an original. A seeded generator gives each 0–4 copies on other
hosts, the way syndicated copy looks: the article body (the AEB ground truth) with a rewritten headline,
one paragraph cut or one added (taken from another AEB article), a few words changed, wrapped in a different
synthetic site template (navigation, related links, newsletter box, footer with the local site's notice).
Originals go through newsmill's extraction as the real page; copies as their generated page. Then
:class:`newsmill.tasks.stories.StoryIndex` assigns story ids, with copies first seen 1–72 hours after
their original.

Pairs: every pair of documents; "same" in truth = copies of one original (the originals themselves are 181
different articles, so every cross-original pair is a "different" pair). Prints pairwise precision,
recall and F1, and the time to sign and assign.

    .venv/bin/python bench/stories.py [--seed 7] [--threshold 0.5] [--limit N] [--data DIR]

``--rebuild-n N`` measures ``newsmill stories --rebuild`` instead: a warehouse of N generated article
versions (random 150-word texts over a 20,000-word vocabulary, one in ten a lightly edited copy of an
earlier one, first seen over N/1000 days) is written as Parquet, then rebuilt in a subprocess whose peak
RSS is reported (memory stays bounded by one window of signatures, not by N).

    .venv/bin/python bench/stories.py --rebuild-n 1000000
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from html import escape
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "aeb"

SITES = [
    ("valleygazette.example", "The Valley Gazette"),
    ("northshoredaily.example", "North Shore Daily"),
    ("prairieradio.example", "Prairie Public Radio"),
    ("harborcitypost.example", "Harbor City Post"),
    ("midlandsherald.example", "Midlands Herald"),
    ("lakecountytribune.example", "Lake County Tribune"),
]
SWAP = ["said", "reported", "noted", "added", "stated", "told", "new", "recent", "major", "local"]


def _rewrite_headline(title: str, rng: random.Random) -> str:
    words = title.split()
    if len(words) > 4:
        i = rng.randrange(len(words) - 2)
        words[i], words[i + 1] = words[i + 1], words[i]
    return rng.choice(["", "UPDATE: ", "Report: ", "Watch: "]) + " ".join(words)


def _edit_paragraphs(paras: list[str], other: list[str], rng: random.Random) -> list[str]:
    paras = list(paras)
    if len(paras) > 3 and rng.random() < 0.5:
        del paras[rng.randrange(1, len(paras))]  # one paragraph cut (never the lead)
    elif other:
        paras.insert(rng.randrange(1, len(paras) + 1), rng.choice(other))  # one added
    for _ in range(rng.randint(2, 5)):  # a few words changed
        i = rng.randrange(len(paras))
        words = paras[i].split()
        if words:
            words[rng.randrange(len(words))] = rng.choice(SWAP)
            paras[i] = " ".join(words)
    return paras


def _page(site: tuple[str, str], title: str, paras: list[str], rng: random.Random) -> str:
    domain, name = site
    nav = "".join(f'<li><a href="/{s}">{s.title()}</a></li>' for s in ["news", "sports", "opinion", "weather"])
    related = "".join(f'<li><a href="/story/{rng.randrange(10**6)}">More local coverage from {escape(name)} '
                      f"part {k}</a></li>" for k in range(4))
    body = "".join(f"<p>{escape(p)}</p>" for p in paras)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} | {escape(name)}</title>
<meta property="og:site_name" content="{escape(name)}"></head><body>
<header><div class="logo">{escape(name)}</div><nav><ul>{nav}</ul></nav></header>
<main><article><h1>{escape(title)}</h1><div class="byline">Wire staff</div>
<div class="article-body">{body}</div></article>
<aside class="related"><h2>Related stories</h2><ul>{related}</ul></aside>
<div class="newsletter">Sign up for the {escape(name)} morning newsletter. Get the day's headlines in your inbox.</div>
</main><footer><p>&copy; 2024 {escape(name)}. All rights reserved.</p></footer></body></html>"""


def build(data: Path, seed: int, limit: int | None):
    truth = json.loads((data / "ground-truth.json").read_text())
    ids = sorted(truth)[:limit] if limit else sorted(truth)
    rng = random.Random(seed)
    bodies = {i: [p for p in truth[i]["articleBody"].split("\n") if p.strip()] for i in ids}
    docs = []  # (doc key, original id, url, html, first_seen)
    t0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
    for n, i in enumerate(ids):
        html = gzip.decompress((data / "html" / f"{i}.html.gz").read_bytes())
        url = truth[i].get("url") or f"https://original{n}.example/a"
        seen = t0 + timedelta(hours=n)
        docs.append((f"{i}/orig", i, url, html, seen))
        paras = bodies[i]
        title = paras[0][:90] if paras else i
        for c, site in enumerate(rng.sample(SITES, rng.randint(0, 4))):
            other = bodies[rng.choice(ids)]
            page = _page(site, _rewrite_headline(title, rng), _edit_paragraphs(paras, other, rng), rng)
            docs.append((f"{i}/copy{c}", i, f"https://{site[0]}/story/{i}-{c}", page,
                         seen + timedelta(hours=rng.randint(1, 72))))
    return docs


def _generate_warehouse(root: Path, n: int, seed: int) -> None:
    import hashlib

    import numpy as np
    import pyarrow as pa

    from newsmill.warehouse.schema import ARTICLE_VERSIONS
    from newsmill.warehouse.store import Warehouse

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    chunk = 20_000
    with Warehouse(root).writer("gen") as w:
        kept: list[str] = []
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            words = vocab[rng.integers(0, len(vocab), size=(m, 150))]
            texts = [" ".join(row) for row in words]
            for j in range(m):  # one in ten: a copy of a recent text with a few words changed
                if kept and rng.random() < 0.1:
                    base = kept[-1 - int(rng.integers(0, len(kept)))].split()
                    for _ in range(3):
                        base[int(rng.integers(0, len(base)))] = "changed"
                    texts[j] = " ".join(base)
                kept = (kept + [texts[j]])[-200:]
            ids = [f"a{start + j:08d}" for j in range(m)]
            seen = [t0 + timedelta(seconds=86.4 * (start + j)) for j in range(m)]  # 1,000 a day
            cols = {f.name: pa.nulls(m, f.type) for f in ARTICLE_VERSIONS}
            cols.update({
                "article_id": pa.array(ids), "url": pa.array([f"https://s{k % 97}.example/{k}" for k in range(start, start + m)]),
                "domain": pa.array([f"s{k % 97}.example" for k in range(start, start + m)]),
                "text": pa.array(texts),
                "content_hash": pa.array([hashlib.sha256(t.encode()).hexdigest()[:16] for t in texts]),
                "published_at": pa.array(seen, ARTICLE_VERSIONS.field("published_at").type),
                "processed_at": pa.array(seen, ARTICLE_VERSIONS.field("processed_at").type),
                "extractor_version": pa.array(["bench"] * m),
            })
            w.write_table("article_versions", pa.table(cols, schema=ARTICLE_VERSIONS), f"g{start}")
        w.consolidate()


def rebuild_bench(n: int, seed: int) -> int:
    import subprocess
    import tempfile

    import psutil

    with tempfile.TemporaryDirectory(prefix="stories-bench-") as tmp:
        root = Path(tmp) / "wh"
        t = time.perf_counter()
        _generate_warehouse(root, n, seed)
        print(f"generated {n:,} article versions in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        proc = psutil.Popen([str(Path(sys.executable).parent / "newsmill"), "stories", "--rebuild",
                             "--warehouse", str(root)], stdout=subprocess.PIPE, text=True)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, proc.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        out = proc.stdout.read()
        wall = time.perf_counter() - t
        if proc.returncode:
            print(out)
            return proc.returncode
        res = json.loads(out)
        print(f"rebuild: {res['articles']:,} versions, {res['joined']:,} joined a story, "
              f"{wall:.1f} s wall ({wall / max(1, n) * 1e6:.0f} µs per article), peak RSS {peak / 2**20:.0f} MB")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--texts-cache", type=Path, default=None,
                    help="JSON file of extracted texts: reused if present (tuning the matcher), written otherwise")
    ap.add_argument("--rebuild-n", type=int, default=None, metavar="N",
                    help="instead: time `newsmill stories --rebuild` over N generated stored articles")
    args = ap.parse_args(argv)
    if args.rebuild_n:
        return rebuild_bench(args.rebuild_n, args.seed)
    if not (args.data / "ground-truth.json").exists():
        print(f"AEB data not found at {args.data}", file=sys.stderr)
        return 2

    from newsmill.tasks.clean import load_rules
    from newsmill.tasks.config import ExtractSettings
    from newsmill.tasks.extract import extract_page
    from newsmill.tasks.stories import Signed, StoryIndex, signature

    docs = build(args.data, args.seed, args.limit)
    rules, settings = load_rules(), ExtractSettings()
    t = time.perf_counter()
    texts = {}
    cache = args.texts_cache
    if cache and cache.exists():
        texts = json.loads(cache.read_text())
    for key, _orig, url, html, _seen in docs:
        if key not in texts:
            res = extract_page(html, url, rules=rules, settings=settings)
            texts[key] = res.article.text if res.article else ""
    if cache:
        cache.write_text(json.dumps(texts))
    t_extract = time.perf_counter() - t

    t = time.perf_counter()
    items = [Signed(key, url.split("/")[2], seen, signature(texts[key])) for key, _o, url, _h, seen in docs]
    t_sign = time.perf_counter() - t
    t = time.perf_counter()
    assigned = {a.key: a.story_id for a in StoryIndex(threshold=args.threshold).assign(items)}
    t_assign = time.perf_counter() - t

    orig = {key: o for key, o, *_ in docs}
    tp = fp = fn = 0
    fp_pairs, fn_pairs = [], []
    for a, b in combinations(sorted(orig), 2):
        same, pred = orig[a] == orig[b], assigned[a] == assigned[b]
        tp += same and pred
        if pred and not same:
            fp += 1
            fp_pairs.append((a, b))
        if same and not pred:
            fn += 1
            fn_pairs.append((a, b))
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    stories = defaultdict(set)
    for k, s in assigned.items():
        stories[s].add(k)
    n_orig = len({o for o in orig.values()})
    print(f"documents {len(docs)} ({n_orig} originals, {len(docs) - n_orig} copies); "
          f"same-story pairs in truth {tp + fn}, stories found {len(stories)}")
    print(f"pairwise precision {p:.4f}  recall {r:.4f}  F1 {f1:.4f}  (threshold {args.threshold}, seed {args.seed})")
    print(f"time: extract {t_extract:.1f} s, sign {t_sign * 1000 / len(docs):.2f} ms/doc, "
          f"assign {t_assign * 1000 / len(docs):.2f} ms/doc")
    for label, pairs in (("false merges", fp_pairs), ("missed pairs", fn_pairs)):
        if pairs:
            print(f"{label} ({len(pairs)}): " + ", ".join(f"{a}~{b}" for a, b in pairs[:10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
