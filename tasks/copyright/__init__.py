"""Who owns an article: copyright holder, year, notice, licence, and whether it is syndicated copy.

Evidence, strongest first. Evidence attached to the ARTICLE beats evidence about the SITE (issue 12,
correcting issue 3's order, which put the page's meta above the body line: a daily republishing wire copy
names itself in <meta name="copyright"> and its footer on every page, while the story's own notice names
the wire)::

    jsonld       the JSON-LD article node: copyrightHolder, copyrightYear, copyrightNotice, license
                 (never an ImageObject's copyright: a photo agency does not own the story)
    body_line    a trailing notice line captured from the end of the article body by the cleaner
                 ("Copyright 2026 The Associated Press. All rights reserved.", "This article first
                 appeared on ProPublica and is republished here under a Creative Commons license.")
    --- site-level from here on ---
    meta         <meta name="copyright">, dcterms.rights, dc.rights
    rel_license  <link rel="license"> / <a rel="license">
    footer       the "©" line of the page footer (<footer>, [role=contentinfo], [class*=footer], <small>)

Combination rule (:func:`combine`, the only place it is written): the first source (in that order) that
names a *holder* gives ``holder``, ``year``, ``notice`` and ``source``; ``license_url`` is the first licence
found by any source. When no source names a holder, the first source with a notice or licence gives the
fields. Within the body lines, the first notice naming a holder speaks for them (else the first).
The extractor reads the tree sources before cleaning (:func:`tree_evidence`), captures the body line after
extraction and calls :func:`combine` once.

Holder normalisation (decided here, applied everywhere): the name as a reader would write it — the
copyright sign, "Copyright", years, "All rights reserved" (en/de/fr/es/it), "To see more, visit ..." and
URLs are removed, and a trailing *legal-form* suffix is dropped (Inc., LLC, Ltd., Limited, plc, GmbH,
GmbH & Co. KG, AG, SE, S.A., S.L., SAS, Corp., Corporation, L.P., Pvt., B.V., S.p.A., S.r.l., e.V., ...), and
an appositive after a comma is dropped ("The Detroit News, a Digital First Media Newspaper") so that "NPR, Inc." in one place and "NPR"
in another compare equal. Articles ("The Associated Press") and the rest of the name are kept.

``year`` is the latest year of a range ("2021–2024" -> 2024, "2024-26" -> 2026).

``license_url`` is canonical: Creative Commons URLs become ``https://creativecommons.org/licenses/by-nd/4.0/``
(https, no www, trailing slash, no ``deed.xx``/``legalcode``); a CC licence *named* in text maps to its
URL when the type is stated ("CC BY-NC-ND 4.0", "Creative Commons Attribution-NoDerivatives 4.0";
version 4.0 when none is given); "a Creative Commons license" alone gives None.

``syndicated``: True when the holder is not the publishing site (compared loosely with the site name and
the domain: case, "The", punctuation, legal forms ignored; token containment, a shared distinctive word
("Ediciones del Valle" / "Diario del Valle") and acronym/domain-label matches count as the same party),
False when it is (always False for a footer notice: the footer names the site's own operator), None when
there is no holder.

Errors are values: nothing here raises on odd data.

Layout (private modules; import only the names in ``__all__`` from ``newsmill.tasks.copyright``):

* ``_vocab`` -- the regular expressions and word sets of notices (marks, rights phrases, legal forms, CC words);
* ``_lines`` -- ``CopyrightInfo``; one notice line: licence URLs, holders and years, ``match_copyright_line``;
* ``_sources`` -- the tree sources: JSON-LD, meta, rel=license, footer;
* ``_party`` -- ``same_party``;
* ``_combine`` -- ``TreeEvidence``, ``tree_evidence``, ``combine`` (the combination rule).
"""

from newsmill.tasks.copyright._combine import TreeEvidence, combine, tree_evidence
from newsmill.tasks.copyright._lines import (CopyrightInfo, license_from_text, match_copyright_line, normalize_holder,
                                             normalize_license_url)
from newsmill.tasks.copyright._party import same_party

__all__ = [
    "CopyrightInfo",
    "match_copyright_line",
    "TreeEvidence",
    "tree_evidence",
    "combine",
    "normalize_holder",
    "normalize_license_url",
    "license_from_text",
    "same_party",
]
