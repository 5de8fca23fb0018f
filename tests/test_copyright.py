"""Unit tests for tasks.copyright: notice lines, holder/year/licence normalisation, evidence order."""

from __future__ import annotations

import json

import pytest

from newsmill.tasks.copyright import (
    CopyrightInfo,
    combine,
    license_from_text,
    match_copyright_line,
    normalize_holder,
    normalize_license_url,
    same_party,
    tree_evidence,
)
from newsmill.tasks.metadata import extract_metadata
from newsmill.tasks.parse import parse_html
from newsmill.tasks.records import COPYRIGHT_SOURCES


@pytest.mark.parametrize("line, holder, year", [
    ("Copyright 2019 NPR. To see more, visit https://www.npr.org.", "NPR", 2019),
    ("Copyright 2019 NPR. To see more, visit", "NPR", 2019),
    ("© 2026 The Associated Press. All rights reserved.", "The Associated Press", 2026),
    ("© 2026 The Associated Press. All rights reserved. This material may not be published, broadcast, "
     "rewritten or redistributed without permission.", "The Associated Press", 2026),
    ("(c) 2024-2026 Example Media Group", "Example Media Group", 2026),
    ("Copyright © 2021–2024 The Daily Bugle. All Rights Reserved.", "The Daily Bugle", 2024),
    ("© 2024-26 Harbor Press", "Harbor Press", 2026),
    ("This article first appeared on ProPublica and is republished here under a Creative Commons license.",
     "ProPublica", None),
    ("Este artículo se publicó originalmente en El Faro bajo licencia Creative Commons", "El Faro", None),
    ("Dieser Artikel erschien zuerst bei Correctiv.", "Correctiv", None),
    ("Cet article a été initialement publié par Mediapart.", "Mediapart", None),
    ("© Verlag XY 2025", "Verlag XY", 2025),
    ("Verlag XY GmbH 2025 – Alle Rechte vorbehalten", "Verlag XY", 2025),
    ("Alle Rechte vorbehalten", None, None),
    ("Tous droits réservés", None, None),
    ("© 2025 Guardian News & Media Limited or its affiliated companies. All rights reserved.",
     "Guardian News & Media", 2025),
    ("Copyright (c) 2024 Foo Inc. All rights reserved.", "Foo", 2024),
    ("© 2024 U.S. News & World Report, L.P.", "U.S. News & World Report", 2024),
])
def test_notice_lines(line, holder, year):
    info = match_copyright_line(line)
    assert info is not None, line
    assert info.holder == holder
    assert info.year == year
    assert info.notice == line


@pytest.mark.parametrize("line", [
    "The lawsuit claims copyright infringement by the studio in 2019.",
    "Copyright law in the U.S. changed in 1998.",
    "Copyright Office officials said in 2019 that the rules would change.",
    "He said all rights reserved for the winners of the race in town.",
    "Photo: © Jane Doe/Getty Images",
    "300x250 Ad",
    "Support quality journalism, like the story above, with your gift right now.",
    "",
    "x" * 1000,
])
def test_prose_is_not_a_notice(line):
    assert match_copyright_line(line) is None


@pytest.mark.parametrize("url, expected", [
    ("http://creativecommons.org/licenses/by-nd/4.0/deed.en", "https://creativecommons.org/licenses/by-nd/4.0/"),
    ("https://www.creativecommons.org/licenses/BY-NC/3.0/us/legalcode",
     "https://creativecommons.org/licenses/by-nc/3.0/us/"),
    ("//creativecommons.org/licenses/by/4.0", "https://creativecommons.org/licenses/by/4.0/"),
    ("https://creativecommons.org/publicdomain/zero/1.0/deed.de", "https://creativecommons.org/publicdomain/zero/1.0/"),
    ("mailto:x@example.org", None),
    ("", None),
])
def test_license_url_normalisation(url, expected):
    assert normalize_license_url(url) == expected


@pytest.mark.parametrize("text, expected", [
    ("Licensed under CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0/"),
    ("This work is licensed under a Creative Commons Attribution-NoDerivatives 4.0 International License.",
     "https://creativecommons.org/licenses/by-nd/4.0/"),
    ("Esta obra está bajo una licencia Creative Commons Atribución-NoComercial-SinDerivadas 4.0 Internacional.",
     "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
    ("republished under a Creative Commons license", None),
    ("released under CC0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    ("see http://creativecommons.org/licenses/by/2.0/deed.en.", "https://creativecommons.org/licenses/by/2.0/"),
])
def test_license_from_text(text, expected):
    assert license_from_text(text) == expected


def test_holder_normalisation():
    assert normalize_holder("NPR, Inc.") == "NPR"
    assert normalize_holder("© 2024 The Associated Press. All rights reserved.") == "The Associated Press"
    assert normalize_holder("Verlag XY GmbH & Co. KG") == "Verlag XY"
    assert normalize_holder("  ") is None


@pytest.mark.parametrize("holder, site, domain, expected", [
    ("NPR", "WXYZ Public Radio", "wxyz.org", False),
    ("The Daily Bugle", "The Daily Bugle", "dailybugle.com", True),
    ("Daily Bugle Media Group", "The Daily Bugle", None, True),
    ("NPR", None, "npr.org", True),
    ("The Associated Press", "AP News", "apnews.com", True),
    ("AP", "Apex Daily", "apexdaily.com", False),
    ("ProPublica", "The Hillside Herald", "hillsideherald.com", False),
    ("ProPublica", None, None, None),
])
def test_same_party(holder, site, domain, expected):
    assert same_party(holder, site, domain) is expected


# ---- evidence order --------------------------------------------------------------------------------

def _page(head="", body="", url="https://www.wxyz.org/news/story", jsonld=None):
    ld = "".join(f'<script type="application/ld+json">{json.dumps(o)}</script>' for o in jsonld or ())
    return parse_html(f"<html lang=en><head>{head}{ld}</head><body>{body}</body></html>", url)


FOOTER = '<footer><p>© 2026 WXYZ Public Radio. All rights reserved. <a href="/privacy">Privacy</a></p></footer>'
SITE = '<meta property="og:site_name" content="WXYZ Public Radio">'


def _find(p, lines=()):
    """What the extractor decides: the page's tree evidence, the notices matched on the captured body
    lines, combined once (``tasks.extract``)."""
    md = extract_metadata(p)
    return combine(tree_evidence(p), [match_copyright_line(line) for line in lines], metadata=md,
                   site_name=md.site_name)


def test_body_line_beats_footer_and_is_syndicated():
    p = _page(SITE, "<article><p>Story.</p></article>" + FOOTER)
    info = _find(p, ["300x250 Ad", "Copyright 2019 NPR. To see more, visit https://www.npr.org."])
    assert (info.holder, info.year, info.source, info.syndicated) == ("NPR", 2019, "body_line", True)
    assert info.notice.startswith("Copyright 2019 NPR")


def test_footer_fallback_not_syndicated():
    info = _find(_page(SITE, "<article><p>Story.</p></article>" + FOOTER))
    assert (info.holder, info.year, info.source, info.syndicated) == ("WXYZ Public Radio", 2026, "footer", False)


def test_jsonld_article_holder_beats_everything_but_image_copyright_is_ignored():
    ld = {"@graph": [
        {"@type": "ImageObject", "@id": "#img", "copyrightHolder": {"@type": "Organization", "name": "Getty Images"},
         "copyrightYear": 2018, "license": "https://creativecommons.org/licenses/by/2.0/"},
        {"@type": "NewsArticle", "headline": "H", "image": {"@id": "#img"}},
    ]}
    info = _find(_page(SITE, FOOTER, jsonld=[ld]))
    assert info.source == "footer" and info.holder == "WXYZ Public Radio" and info.license_url is None
    ld["@graph"][1].update({"copyrightHolder": {"@type": "Organization", "name": "The Associated Press"},
                            "copyrightYear": "2025",
                            "license": "http://creativecommons.org/licenses/by-nd/4.0/deed.en"})
    info = _find(_page(SITE, FOOTER, jsonld=[ld]), ["Copyright 2019 NPR."])
    assert (info.holder, info.year, info.source, info.syndicated) == ("The Associated Press", 2025, "jsonld", True)
    assert info.license_url == "https://creativecommons.org/licenses/by-nd/4.0/"


def test_meta_and_rel_license():
    p = _page(SITE + '<meta name="copyright" content="Copyright 2024 WXYZ Public Radio">'
                     '<link rel="license" href="http://creativecommons.org/licenses/by-nc/4.0/deed.en">')
    info = _find(p)
    assert (info.holder, info.year, info.source, info.syndicated) == ("WXYZ Public Radio", 2024, "meta", False)
    assert info.license_url == "https://creativecommons.org/licenses/by-nc/4.0/"
    info = _find(_page(SITE + '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">'))
    assert info.source == "rel_license" and info.holder is None and info.syndicated is None


def test_nothing_found():
    info = _find(_page(SITE, "<p>Just a story about copyright law.</p>"))
    assert info == CopyrightInfo()


def test_sources_vocabulary():
    assert set(COPYRIGHT_SOURCES) == {"jsonld", "meta", "rel_license", "body_line", "footer"}


def test_footer_notice_is_trimmed_of_links_and_smallest_element_wins():
    body = ('<div class="footer"><div class="footer-inner"><p>© 2024–2026 Harbor Press · '
            '<a href="/privacy">Privacy Policy</a> | <a href="/terms">Terms</a></p>'
            '<p>Harbor Press is a member of the State Press Association.</p></div></div>')
    info = _find(_page('<meta property="og:site_name" content="Harbor Press">', body))
    assert info.notice == "© 2024–2026 Harbor Press"
    assert (info.holder, info.year, info.source, info.syndicated) == ("Harbor Press", 2026, "footer", False)


def test_trailing_small_print_without_footer_element():
    body = "<article><p>Story text.</p></article><div><small>Copyright 2023 Valley Weekly</small></div>"
    info = _find(_page("", body))
    assert (info.holder, info.year, info.source) == ("Valley Weekly", 2023, "footer")


def test_footer_notice_deep_in_a_large_footer_split_across_elements_and_nested_footers():
    links = "".join(f'<li><a href="/s/{i}">Section {i}</a></li>' for i in range(300))
    body = ('<article><p>The council voted to keep the right of way open, a copyright lawyer said.</p></article>'
            '<footer class="site-footer"><div class="footer-nav"><ul>' + links + '</ul></div>'
            '<div class="footer-legal"><div><span>2025 Lakeside Courier Co.</span> '
            'All <b>rights</b> <i>reserved</i>.</div></div></footer>')
    info = _find(_page('<meta property="og:site_name" content="Lakeside Courier">', body))
    assert (info.holder, info.year, info.source) == ("Lakeside Courier Co", 2025, "footer")
    assert info.notice == "2025 Lakeside Courier Co. All rights reserved."


def test_body_lines_prefer_a_line_with_a_holder():
    p = _page(SITE)
    info = _find(p, ["Licensed under CC BY-NC-ND 4.0", "© 2022 The Open Ledger"])
    assert info.holder == "The Open Ledger" and info.source == "body_line"
    assert info.license_url == "https://creativecommons.org/licenses/by-nc-nd/4.0/"
    assert info.syndicated is True


def test_combine_without_metadata_or_body_notices():
    p = _page(SITE, FOOTER)
    assert combine(tree_evidence(p)).source == "footer"
    assert combine(tree_evidence(p), [None, match_copyright_line("")]).source == "footer"


@pytest.mark.parametrize("line, holder", [
    ("© The Detroit Ledger, a Digital First Media Newspaper", "The Detroit Ledger"),
    ("© 2018 Copyright India Weekly Media Pvt. Ltd.. All Rights reserved.", "India Weekly Media"),
    ("Copyright © 2019, Quill Media, Inc.,", "Quill Media"),
    ("© dpa-infocom, dpa:260113-99-104233/2", "dpa-infocom"),
    ("© 2026 Riverton Sentinel, a division of Prairie Press Holdings LLC. All rights reserved.", "Riverton Sentinel"),
])
def test_holder_appositives_ids_and_legal_forms(line, holder):
    assert match_copyright_line(line).holder == holder


# ---- one combination rule: tree evidence collected first, body line added, decided once -------------

def test_tree_evidence_lists_each_source_in_order():
    ld = {"@type": "NewsArticle", "headline": "H", "license": "https://creativecommons.org/licenses/by/4.0/"}
    p = _page(SITE + '<meta name="copyright" content="WXYZ Public Radio">', FOOTER, jsonld=[ld])
    assert [c.source for c in tree_evidence(p).candidates] == ["jsonld", "meta", "footer"]


def test_combine_body_notices_first_holder_wins_and_licence_order_is_by_source():
    p = _page(SITE, '<footer><p>© 2026 WXYZ Public Radio. CC BY 4.0</p></footer>')
    ev = tree_evidence(p)
    assert ev.candidates[0].license_url == "https://creativecommons.org/licenses/by/4.0/"
    body = [match_copyright_line("Licensed under CC BY-NC-ND 4.0"), None, match_copyright_line("© 2022 The Open Ledger")]
    info = combine(ev, body, site_name="WXYZ Public Radio")
    # the body line names a holder (a body line beats the footer), its licence beats the footer's
    assert (info.holder, info.year, info.source, info.syndicated) == ("The Open Ledger", 2022, "body_line", True)
    assert info.license_url == "https://creativecommons.org/licenses/by-nc-nd/4.0/"
    # no body notice: the footer decides, and is never syndicated
    info = combine(ev, (), site_name="WXYZ Public Radio")
    assert (info.holder, info.source, info.syndicated) == ("WXYZ Public Radio", "footer", False)
    assert combine(tree_evidence(_page()), ()) == CopyrightInfo()


def test_article_evidence_beats_site_meta_and_footer():
    """Issue 12 (correcting issue 3's order): a daily republishing wire copy names itself in
    <meta name="copyright"> and the footer on every page; the story's own notice names the wire. Evidence
    attached to the article (body line, republication credit) wins; the site's evidence only when the
    article says nothing."""
    meta = '<meta name="copyright" content="Copyright 2026 WXYZ Public Radio">'
    p = _page(SITE + meta, "<article><p>Story.</p></article>" + FOOTER)
    info = _find(p, ["Copyright 2026 The Associated Press. All rights reserved."])
    assert (info.holder, info.year, info.source, info.syndicated) == ("The Associated Press", 2026, "body_line", True)
    info = _find(p, ["This article first appeared on The Open Ledger and is republished here under a "
                     "Creative Commons license."])
    assert (info.holder, info.source, info.syndicated) == ("The Open Ledger", "body_line", True)
    # nothing attached to the article: the site's meta decides, and it is the site's own story
    info = _find(p)
    assert (info.holder, info.source, info.syndicated) == ("WXYZ Public Radio", "meta", False)
    # the JSON-LD of the article node is article evidence too, and comes first
    ld = {"@type": "NewsArticle", "headline": "H", "copyrightHolder": {"@type": "Organization", "name": "Reuters"}}
    info = _find(_page(SITE + meta, FOOTER, jsonld=[ld]), ["Copyright 2026 The Associated Press."])
    assert (info.holder, info.source, info.syndicated) == ("Reuters", "jsonld", True)
