"""Per-page extraction time of this checkout against an earlier commit (issue 12: "within 1.05× of today's"),
and against ``trafilatura.bare_extraction(with_metadata=True)``, on the AEB pages, same run.

The earlier commit is checked out with ``git worktree`` into a temporary directory; each timing pass runs in
a fresh process of its own (one system per process: systems sharing a process share the libraries' caches
and the second one on a page runs partly warm, see ``bench/aeb.py``), warmed on ``--warmup`` other pages
(the first of trafilatura's evaluation set: the steady state of a pipeline worker, whose lazily built
tables a 181-page pass would otherwise pay for — dateparser's locales alone cost ~2.3 s, 13 ms per AEB
page), then CPU time over every AEB page. Rounds rotate the order; each system's median pass counts, and,
the figure that moves least between runs on a shared machine (a pass is slowed by whatever else ran
meanwhile, ±15 % here), each page's fastest pass over the rounds, summed.

Usage::

    .venv/bin/python bench/extract_speed.py [--ref 790aae8] [--rounds 5] [--together] [--data DIR] [--limit N]

``--ref`` defaults to 790aae8, the commit issue 12 measured ("today's" extraction). Commits from before the
package move (``tasks.*`` imports) and after it (``newsmill.tasks.*``) both work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REF = "790aae8"

# one timing pass of ``extract_page`` from the code under ``sys.argv[1]`` (a checkout), printed as JSON
_PASS = textwrap.dedent('''
    import importlib, json, sys, time
    code, bench, data, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])  # argv[5]: warm-up pages
    sys.path.insert(0, bench)
    import aeb
    pages = aeb.load_pages(aeb.Path(data), limit or None)
    if code == "bare":
        run = aeb.bare_metadata_runner()
    else:
        sys.path.insert(0, code)
        pkg = "newsmill.tasks" if aeb.Path(code, "newsmill", "__init__.py").exists() else "tasks"
        clean = importlib.import_module(pkg + ".clean")
        config = importlib.import_module(pkg + ".config")
        extract = importlib.import_module(pkg + ".extract")
        rules, settings = clean.load_rules(), config.ExtractSettings()
        assert extract.__file__.startswith(code), extract.__file__
        run = lambda url, html: extract.extract_page(html, url, rules=rules, settings=settings)
    # warm-up on other pages (trafilatura's evaluation set, when present): what a pipeline worker has
    # built by its second batch — lazily compiled regexes, dateparser's locale tables — is not counted
    # against the 181 timed pages, and no timed page is seen twice (content-keyed caches stay cold)
    import gzip
    warm = sorted((aeb.Path(data).parent / "trafilatura-eval" / "html").glob("*.html.gz"))[:int(sys.argv[5])]
    for f in warm:
        run("https://example.invalid/" + f.name, gzip.open(f).read())
    run(pages[0][1], pages[0][2])
    c0 = time.process_time()
    per_page = []
    for _pid, url, html, _truth in pages:
        t = time.process_time()
        run(url, html)
        per_page.append(1000 * (time.process_time() - t))
    print(json.dumps({"pages": len(pages), "cpu_ms": 1000 * (time.process_time() - c0) / len(pages),
                      "per_page_ms": per_page}))
''')


def _layout(ref_dir: Path, out: Path) -> Path:
    """A directory from which ``import newsmill`` (or ``tasks``) loads the code of ``ref_dir``: a checkout
    after the package move maps its top-level folders into ``newsmill`` (pyproject ``package-dir``)."""
    if not (ref_dir / "newsmill" / "__init__.py").exists():
        return ref_dir
    pkg = out / "newsmill"
    pkg.mkdir(parents=True)
    for item in (ref_dir / "newsmill").iterdir():
        (pkg / item.name).symlink_to(item)
    for sub in ("flows", "tasks", "warehouse", "config"):
        (pkg / sub).symlink_to(ref_dir / sub)
    return out


def run(ref: str = DEFAULT_REF, rounds: int = 5, data: Path | None = None, limit: int = 0, warmup: int = 100,
        together: bool = False) -> dict:
    sys.path.insert(0, str(ROOT / "bench"))
    import aeb

    data = data or aeb.DEFAULT_DATA
    with tempfile.TemporaryDirectory(prefix="newsmill-speed-") as tmp:
        ref_dir = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(ref_dir), ref],
                       check=True, capture_output=True)
        try:
            systems = {"head": str(_layout(ROOT, Path(tmp) / "head")), f"ref {ref}": str(_layout(ref_dir, Path(tmp) / "refpkg")),
                       "bare_extraction+metadata": "bare"}
            passes: dict[str, list[float]] = {name: [] for name in systems}
            page_min: dict[str, list[float]] = {}  # per page, the least CPU any pass of the system took
            names = list(systems)
            def start(name):
                return subprocess.Popen([sys.executable, "-c", _PASS, systems[name], str(ROOT / "bench"), str(data),
                                         str(limit), str(warmup)], stdout=subprocess.PIPE, text=True, cwd=tmp)

            def finish(name, proc, r):
                out, _ = proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"extract_speed: the {name} pass failed (exit {proc.returncode})")
                res = json.loads(out.strip().splitlines()[-1])
                passes[name].append(res["cpu_ms"])
                prev = page_min.get(name)
                page_min[name] = res["per_page_ms"] if prev is None else list(map(min, prev, res["per_page_ms"]))
                print(f"  round {r + 1} {name}: {passes[name][-1]:.2f} ms/page", file=sys.stderr)

            for r in range(max(rounds, 1)):
                order = names[r % len(names):] + names[:r % len(names)]
                if together:  # the round's passes side by side: a load that comes and goes hits all of them
                    procs = [(name, start(name)) for name in order]
                    for name, proc in procs:
                        finish(name, proc, r)
                else:
                    for name in order:
                        finish(name, start(name), r)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_dir)],
                           capture_output=True)
    med = {name: statistics.median(v) for name, v in passes.items()}
    # a pass is slowed by whatever else the machine did meanwhile, page by page: each page's fastest pass
    # is its cost with the least interference (the figure that moves least between runs)
    floor = {name: sum(v) / len(v) for name, v in page_min.items()}
    paired = statistics.median(h / x for h, x in zip(passes["head"], passes[f"ref {ref}"]))
    return {"ref": ref, "rounds": rounds, "together": together,
            "cpu_ms_per_page": {k: round(v, 2) for k, v in med.items()},
            "head_vs_ref_per_round_median": round(paired, 3),
            "passes": {k: [round(x, 2) for x in v] for k, v in passes.items()},
            "head_vs_ref": round(med["head"] / med[f"ref {ref}"], 3),
            "per_page_min_ms": {k: round(v, 2) for k, v in floor.items()},
            "head_vs_ref_per_page_min": round(floor["head"] / floor[f"ref {ref}"], 3),
            "head_vs_bare_per_page_min": round(floor["head"] / floor["bare_extraction+metadata"], 3),
            "head_vs_bare": round(med["head"] / med["bare_extraction+metadata"], 3),
            "ref_vs_bare": round(med[f"ref {ref}"] / med["bare_extraction+metadata"], 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default=DEFAULT_REF, help=f"the earlier commit (default {DEFAULT_REF})")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=None, help="AEB data directory")
    ap.add_argument("--limit", type=int, default=0, help="first N pages only")
    ap.add_argument("--warmup", type=int, default=100,
                    help="pages of ../shared/benchmarks/trafilatura-eval run first in every pass, untimed (0: none)")
    ap.add_argument("--together", action="store_true",
                    help="run each round's passes at the same time (one per core and more: on a machine with other "
                         "load, every system sees the same load; the per-round ratio is then the figure to read)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.ref, args.rounds, args.data, args.limit, args.warmup, args.together)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"extraction CPU per AEB page, median of {res['rounds']} passes each (fresh process per pass"
          f"{', the passes of a round at the same time' if res['together'] else ''}):")
    for name, ms in res["cpu_ms_per_page"].items():
        print(f"  {name:28} {ms:7.2f} ms/page   passes {res['passes'][name]}")
    print(f"this checkout / {res['ref']}: {res['head_vs_ref']:.3f}x   this checkout / bare_extraction(with_metadata=True): "
          f"{res['head_vs_bare']:.3f}x   ({res['ref']} / bare: {res['ref_vs_bare']:.3f}x)")
    print(f"this checkout / {res['ref']}, median of the per-round ratios: {res['head_vs_ref_per_round_median']:.3f}x")
    floor = res["per_page_min_ms"]
    print(f"each page's fastest pass (the least interference), summed: "
          + ", ".join(f"{name} {ms:.2f} ms/page" for name, ms in floor.items())
          + f"; this checkout / {res['ref']}: {res['head_vs_ref_per_page_min']:.3f}x, / bare_extraction: "
            f"{res['head_vs_bare_per_page_min']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
