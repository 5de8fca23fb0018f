"""Source health: is tonight normal for this source? (pure functions; the warehouse side computes the
figures in ``warehouse/health.py``, the flow reports them in ``flows/health.py``).

The commonest failure of a news pipeline is silent: a publisher changes its template and the run keeps
"succeeding" with 0 articles, empty bylines or text full of a new widget. Each ingest run measures, per
source, the figures below and compares each with its median over the source's previous
``health.history_nights`` runs (one run a night when scheduled):

=========================  ==========================================================  =====================
figure                      meaning                                                     flagged when
=========================  ==========================================================  =====================
``articles``                new article versions written                                0 while the median > 0
                                                                                         (broken), or below
                                                                                         ``broken_ratio`` /
                                                                                         ``degraded_ratio`` ×
                                                                                         median
``ok_share``                fetched without a fetch error (of the pages requested       ``share_drop`` below
                            without a 304)                                              the median
``no_article_share``        pages fetched but no article found in them                 ``no_article_rise``
                                                                                         above the median
``median_text_chars``       median article text length                                  below ``degraded_ratio``
                                                                                         × median
``authors_share``,          articles with authors / a published date / a copyright     ``share_drop`` below
``published_share``,        holder                                                      the median
``copyright_share``
``boilerplate_per_article`` removed segments per article                               above
                                                                                         ``boilerplate_ratio``
                                                                                         × median
=========================  ==========================================================  =====================

``status`` is ``new`` while a source has fewer than ``health.min_history`` earlier runs, ``broken`` when
articles dropped to (almost) nothing or no page could be fetched, ``degraded`` when any other figure is
flagged, else ``ok``. Each flag is a reason in words ("articles 0 vs median 48", "authors 5 % vs 92 %").
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime

from newsmill.tasks.config import HealthSettings

__all__ = ["SourceNight", "Assessment", "assess", "sparkline", "report_lines", "percent", "STATUSES", "FIGURES"]

STATUSES = ("new", "ok", "degraded", "broken")
FIGURES = ("articles", "ok_share", "no_article_share", "median_text_chars", "authors_share", "published_share",
           "copyright_share", "boilerplate_per_article")
_LABEL = {
    "articles": "articles", "ok_share": "fetched ok", "no_article_share": "no article",
    "median_text_chars": "median text", "authors_share": "authors", "published_share": "dates",
    "copyright_share": "copyright", "boilerplate_per_article": "boilerplate per article",
}


@dataclass(frozen=True)
class SourceNight:
    """What one run did for one source (NULL shares: nothing to divide by)."""

    source: str
    run_id: str
    night: date
    started_at: datetime
    discovered: int = 0
    fetched: int = 0
    articles: int = 0
    ok_share: float | None = None
    no_article_share: float | None = None
    median_text_chars: float | None = None
    authors_share: float | None = None
    published_share: float | None = None
    copyright_share: float | None = None
    boilerplate_per_article: float | None = None


@dataclass(frozen=True)
class Assessment:
    night: SourceNight
    status: str
    reasons: tuple[str, ...] = ()
    medians: dict = field(default_factory=dict)  # figure -> median of the previous runs (None: no data)
    history: dict = field(default_factory=dict)  # figure -> values of the previous runs, oldest first

    def row(self) -> dict:
        d = asdict(self.night)
        d.update({f"median_{k}": v for k, v in self.medians.items()})
        d["status"] = self.status
        d["reasons"] = list(self.reasons)
        return d


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(statistics.median(vals)) if vals else None


def _pct(v: float) -> str:
    return f"{v * 100:.0f} %"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.1f}".rstrip("0").rstrip(".")


def assess(night: SourceNight, previous: list[SourceNight], t: HealthSettings) -> Assessment:
    """Compare ``night`` with the source's ``previous`` runs (oldest first; the last
    ``t.history_nights`` are used)."""
    prev = previous[-t.history_nights:]
    history = {k: [getattr(p, k) for p in prev] for k in FIGURES}
    medians = {k: _median(v) for k, v in history.items()}
    if len(prev) < t.min_history:
        return Assessment(night, "new", (f"{len(prev)} earlier runs (< {t.min_history})",), medians, history)
    broken: list[str] = []
    degraded: list[str] = []

    m = medians["articles"]
    a = night.articles
    if m is not None and m > 0:
        if a <= m * t.broken_ratio:
            broken.append(f"articles {a} vs median {_num(m)}")
        elif a < m * t.degraded_ratio:
            degraded.append(f"articles {a} vs median {_num(m)}")
    if night.fetched and night.ok_share == 0.0 and (medians["ok_share"] or 0) > 0:
        broken.append(f"fetched ok 0 % vs {_pct(medians['ok_share'])}")
    for k in ("ok_share", "authors_share", "published_share", "copyright_share"):
        v, mk = getattr(night, k), medians[k]
        if v is not None and mk is not None and v < mk - t.share_drop and not any(k[:4] in r for r in broken):
            degraded.append(f"{_LABEL[k]} {_pct(v)} vs {_pct(mk)}")
    v, mk = night.no_article_share, medians["no_article_share"]
    if v is not None and mk is not None and v > mk + t.no_article_rise:
        degraded.append(f"no article {_pct(v)} vs {_pct(mk)}")
    v, mk = night.median_text_chars, medians["median_text_chars"]
    if v is not None and mk and v < mk * t.degraded_ratio:
        degraded.append(f"median text {_num(v)} chars vs {_num(mk)}")
    v, mk = night.boilerplate_per_article, medians["boilerplate_per_article"]
    if v is not None and mk and v > mk * t.boilerplate_ratio:
        degraded.append(f"boilerplate per article {_num(v)} vs {_num(mk)}")
    status = "broken" if broken else "degraded" if degraded else "ok"
    return Assessment(night, status, tuple(broken + degraded), medians, history)


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None]) -> str:
    """Unicode block sparkline (renders in any markdown, the Prefect UI's included); a gap is a space."""
    vals = [v for v in values if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi == lo:
            out.append(_BARS[len(_BARS) // 2] if hi else _BARS[0])
        else:
            out.append(_BARS[round((v - lo) / (hi - lo) * (len(_BARS) - 1))])
    return "".join(out)


def night_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(SourceNight))


def percent(v: float | None) -> str:
    return "" if v is None else f"{v * 100:.0f} %"


def report_lines(assessments: list[Assessment]) -> list[str]:
    """Markdown that leads the run report: alerts first, then every source with its last nights."""
    if not assessments:
        return []
    bad = [a for a in assessments if a.status in ("degraded", "broken")]
    out = []
    if bad:
        out.append("## ⚠ Sources that need a look\n")
        out += [f"* **{a.night.source}: {a.status}** — {'; '.join(a.reasons)}" for a in bad]
        out.append("")
    out.append("## Source health (last nights → tonight)\n")
    out.append("| source | status | articles | no-article share | reasons |")
    out.append("|---|---|---|---|---|")
    for a in assessments:
        arts = a.history.get("articles", []) + [a.night.articles]
        na = a.history.get("no_article_share", []) + [a.night.no_article_share]
        out.append(f"| {a.night.source} | {a.status} | `{sparkline(arts)}` {a.night.articles} | "
                   f"`{sparkline(na)}` {percent(a.night.no_article_share)} | {'; '.join(a.reasons)} |")
    out.append("")
    return out
