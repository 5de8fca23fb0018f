"""How fast newsmill reads its raw WARC archive (issue 15): the takedown scan and the record reader.

``newsmill delete --url`` searches every ``raw/**/*.warc.gz`` file (``tasks.archive.scan_members``: each
gzip member inflated, its WARC header read), so a takedown's time grows with the size of ``raw/``; the
record reader (``tasks.archive.iter_warc_records``, used by ``import-warc`` and ``extract``) parses every
record. This generates a raw archive with ``WarcArchive`` (article-sized HTML pages, ~25 KB each) in a
scratch directory and times both.

    .venv/bin/python bench/raw_scan.py                 # 200 MB of HTML (~40 MB compressed)
    .venv/bin/python bench/raw_scan.py --mb 1000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

WORDS = ("harbour council budget school railway election winter festival library bridge farmers market "
         "museum hospital research coast mountain village ministry report season orchestra theatre").split()


def page(i: int) -> bytes:
    rng = random.Random(i)
    paras = "".join("<p>" + " ".join(rng.choice(WORDS) for _ in range(120)) + "</p>\n" for _ in range(25))
    return (f"<!doctype html><html><head><title>Story {i}</title></head><body><article><h1>Story {i}</h1>"
            f"{paras}</article></body></html>").encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="MB of HTML bodies to archive (default 200)")
    ap.add_argument("--scratch", default=None, help="scratch directory (default: a temp dir, removed)")
    args = ap.parse_args()

    from newsmill.tasks.archive import WarcArchive, iter_warc_records, scan_members

    root = Path(args.scratch or tempfile.mkdtemp(prefix="newsmill-rawscan-"))
    try:
        arc = WarcArchive(root, "bench", idle_seal_s=None)
        t = datetime(2025, 6, 1, tzinfo=timezone.utc)
        n = written = 0
        while written < args.mb * 1e6:
            body = page(n)
            arc.write_response(f"https://news{n % 20}.example/story/{n}.html", 200,
                               [("Content-Type", "text/html; charset=utf-8")], body, t)
            written += len(body)
            n += 1
        arc.close()
        files = sorted(root.rglob("*.warc.gz"))
        size = sum(f.stat().st_size for f in files)

        t0 = time.perf_counter()
        members = 0
        for f in files:
            with open(f, "rb") as fh:
                members += sum(1 for _ in scan_members(fh))
        scan_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        records = sum(1 for f in files for _ in iter_warc_records(f))
        read_s = time.perf_counter() - t0

        out = {"records": n, "html_mb": round(written / 1e6, 1), "raw_mb": round(size / 1e6, 1),
               "files": len(files), "members": members,
               "takedown_scan_s": round(scan_s, 2), "takedown_scan_raw_mb_per_s": round(size / 1e6 / scan_s, 1),
               "record_reader_s": round(read_s, 2), "record_reader_records_per_s": round(records / read_s)}
        print(json.dumps(out))
    finally:
        if not args.scratch:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
