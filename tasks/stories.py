"""Stories: the same article across outlets, found by its text.

A wire story or a public-radio piece runs on many sites, lightly edited (headline rewritten, a paragraph cut,
local boilerplate around it). Every article version gets a text signature: a MinHash computed by ``rensa``
(a maintained Rust implementation; ``NUM_PERM`` permutations, fixed seed) over the set of ``SHINGLE``-word
shingles of its normalised cleaned text. It joins the story of the most similar earlier article when the
estimated Jaccard similarity (the share of equal signature values) reaches ``threshold``, or when one text
is mostly contained in the other (a paragraph cut or added) and they still share ``min_jaccard``.

Candidates come from LSH banding: the 128 values form ``BANDS`` bands of ``ROWS`` values; two signatures are
candidates when any band is equal. A band is two uint32 values packed into one uint64, so band equality is
exact and needs no further hashing. The warehouse finds candidates among the stored signatures of the last
``window_days`` with a DuckDB join on these bands (``warehouse/stories.py``); here the same banding is kept
in memory for the articles being assigned. With 64 bands of 2 values, a pair at Jaccard 0.3 becomes a
candidate with probability 1 - (1 - 0.3²)⁶⁴ ≈ 0.998, at 0.05 with 0.15; every candidate is then confirmed on
the estimates, so false candidates cost a comparison, never a wrong story.

Deterministic: articles are assigned in ``(first_seen, key)`` order; a story's id is the content hash of
the article version that opened it; ties between candidate stories go to the smaller id. The same input
gives the same ids.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Sequence

import numpy as np
from rensa import RMinHash

__all__ = [
    "NUM_PERM", "SHINGLE", "MIN_TOKENS", "Signed", "Assignment", "StoryIndex",
    "SIGNATURE_VERSION", "tokens", "shingles", "signature", "signatures", "similarity",
]

NUM_PERM = 128  # permutations per signature (stored as 128 × uint32)
ROWS = 2  # values per LSH band
BANDS = NUM_PERM // ROWS
SHINGLE = 5  # words per shingle
MIN_TOKENS = 40  # shorter texts are too generic to tie to a story: each is its own story
SEED = 1
# Names the signature function: stored with each signature, so signatures of another function are never
# compared (a rebuild recomputes them).
SIGNATURE_VERSION = f"rensa-minhash{RMinHash.ALGORITHM_VERSION}-p{NUM_PERM}-s{SEED}-k{SHINGLE}"
_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Words of the text after NFKC normalisation and case folding (punctuation and spacing ignored)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text or "").casefold())


def shingles(words: Sequence[str], k: int = SHINGLE) -> list[str]:
    """The ``k``-word shingles, or the whole text as one shingle when shorter."""
    if len(words) < k:
        return [" ".join(words)] if words else []
    return list(map(" ".join, zip(*(words[i:] for i in range(k)))))


@dataclass(frozen=True)
class Signature:
    values: np.ndarray  # NUM_PERM × uint32
    size: int  # number of distinct shingles (for the containment estimate)


def signature(text: str) -> Signature | None:
    """MinHash of the text's shingle set, or None when it has fewer than ``MIN_TOKENS`` words."""
    words = tokens(text)
    if len(words) < MIN_TOKENS:
        return None
    sh = list(set(shingles(words)))
    m = RMinHash(num_perm=NUM_PERM, seed=SEED)
    m.update(sh)
    return Signature(np.asarray(m.digest(), dtype=np.uint32), len(sh))


def signatures(texts: Iterable[str]) -> list[Signature | None]:
    return [signature(t) for t in texts]


def bands(values: np.ndarray) -> np.ndarray:
    """LSH band keys of one signature (``NUM_PERM``) or a matrix of them (n × ``NUM_PERM``): ``BANDS`` uint64
    each, value ``2i`` in the high and ``2i+1`` in the low 32 bits (the same packing the warehouse query uses)."""
    v = np.asarray(values, dtype=np.uint64).reshape(-1, BANDS, ROWS)
    return (v[..., 0] << np.uint64(32)) | v[..., 1]


def similarity(a: Signature, b: Signature) -> tuple[float, float]:
    """(Jaccard, containment) estimated from two signatures: Jaccard is the share of equal values; the
    containment of the smaller shingle set in the larger follows from it and the set sizes
    (|A∩B| = J·(|A|+|B|)/(1+J)). A copy with a paragraph cut or added keeps a high containment even when
    the paragraph is a large part of a short story."""
    j = float(np.count_nonzero(a.values == b.values)) / len(a.values)
    inter = j * (a.size + b.size) / (1.0 + j)
    return j, min(1.0, inter / max(1, min(a.size, b.size)))


@dataclass(frozen=True)
class Signed:
    """One article version to place in a story."""

    key: str  # unique per stored version (the warehouse uses "article_id:content_hash")
    domain: str
    first_seen: datetime  # published_at, else fetched_at (tz-aware)
    sig: Signature | None  # signature(); None = too short to match anything
    story_key: str = ""  # the story id this version opens when it matches none (default: its key)

    def __post_init__(self) -> None:
        if not self.story_key:
            object.__setattr__(self, "story_key", self.key)


@dataclass(frozen=True)
class Assignment:
    key: str
    story_id: str
    similarity: float | None  # estimated Jaccard with the matched member; None = opened its own story
    matched_key: str | None


class StoryIndex:
    """Assigns articles to stories in time order. Holds the members it was given (stored candidates loaded
    by the warehouse, or everything in a rebuild) and the LSH band table over them; members first seen more
    than ``window_days`` before the newest article are evicted, so memory is bounded by one window."""

    def __init__(self, *, threshold: float = 0.5, containment: float = 0.8, min_jaccard: float = 0.3,
                 window_days: int = 30) -> None:
        for name, v in (("threshold", threshold), ("containment", containment), ("min_jaccard", min_jaccard)):
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        self.threshold = threshold  # same story when the estimated Jaccard reaches it, ...
        self.containment = containment  # ... or when one text is mostly inside the other
        self.min_jaccard = min_jaccard  # ... and they still share this much (a brief inside a roundup is not)
        self.window = timedelta(days=window_days)
        self._sigs: dict[str, Signature] = {}
        self._story: dict[str, str] = {}
        self._bands: dict[tuple[int, int], list[str]] = {}
        self._order: deque[tuple[datetime, str]] = deque()  # (first_seen, key) in insertion order
        self._latest: datetime | None = None

    def __len__(self) -> int:
        return len(self._sigs)

    def add_member(self, item: Signed, story_id: str) -> None:
        """Put an already assigned article (e.g. loaded from the warehouse) into the index."""
        self._latest = item.first_seen if self._latest is None else max(self._latest, item.first_seen)
        if item.sig is None or item.key in self._sigs:
            return
        self._sigs[item.key] = item.sig
        self._story[item.key] = story_id
        for i, b in enumerate(bands(item.sig.values)[0].tolist()):
            self._bands.setdefault((i, b), []).append(item.key)
        self._order.append((item.first_seen, item.key))

    def evict_before(self, cutoff: datetime) -> int:
        """Drop members first seen before ``cutoff`` (in insertion order); returns how many were dropped."""
        n = 0
        while self._order and self._order[0][0] < cutoff:
            _, key = self._order.popleft()
            sig = self._sigs.pop(key, None)
            if sig is None:
                continue
            self._story.pop(key, None)
            for i, b in enumerate(bands(sig.values)[0].tolist()):
                keys = self._bands.get((i, b))
                if keys is not None:
                    keys.remove(key)
                    if not keys:
                        del self._bands[(i, b)]
            n += 1
        return n

    def match(self, sig: Signature | None) -> tuple[str, float, str] | None:
        """Best story for a signature: (story_id, estimated Jaccard, matched member key), or None."""
        if sig is None or not self._sigs:
            return None
        seen: set[str] = set()
        cands = []
        for i, b in enumerate(bands(sig.values)[0].tolist()):
            for key in self._bands.get((i, b), ()):
                if key in seen:
                    continue
                seen.add(key)
                sim, cont = similarity(sig, self._sigs[key])
                if sim >= self.threshold or (cont >= self.containment and sim >= self.min_jaccard):
                    cands.append((-sim, self._story[key], key))
        if not cands:
            return None
        # highest similarity; ties to the smaller story id, then the smaller member key (deterministic)
        neg_sim, story, key = min(cands)
        return story, -neg_sim, key

    def assign(self, items: Iterable[Signed]) -> list[Assignment]:
        """Assign new articles in ``(first_seen, key)`` order; each joins the index as it is assigned and
        opens a story named by its ``story_key`` when it matches none."""
        out: list[Assignment] = []
        for item in sorted(items, key=lambda s: (s.first_seen, s.key)):
            if self._latest is not None:
                self.evict_before(max(self._latest, item.first_seen) - self.window)
            hit = self.match(item.sig)
            if hit is None:
                out.append(Assignment(item.key, item.story_key, None, None))
                self.add_member(item, item.story_key)
            else:
                story, sim, matched = hit
                out.append(Assignment(item.key, story, round(sim, 4), matched))
                self.add_member(item, story)
        return out
