"""Boilerplate cleaning: rules as data, phrase rules only on short self-contained blocks, selector guards,
tail text kept, per-site overrides, rule validation. All HTML here is written for the tests."""

from __future__ import annotations

import pickle

import pytest

from newsmill.tasks.clean import (
    RuleSet,
    block_fingerprint,
    clean_lines,
    clean_tree,
    load_rules,
    rules_from_dicts,
    text_blocks,
)
from newsmill.tasks.errors import ConfigError
from newsmill.tasks.parse import parse_html
from newsmill.tasks.records import BOILERPLATE_KINDS

URL = "https://news.example.org/2024/05/town-budget"

PARA = ("The town council met late on Tuesday to settle a budget that had been argued over since the "
        "winter, with members trading amendments until well after the library closed for the night.")


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules()


def page_of(body: str, url: str = URL):
    return parse_html(f"<html><head><title>t</title></head><body>{body}</body></html>", url)


def body_text(page) -> str:
    return " ".join(page.tree.find("body").text_content().split())


def test_rules_load_picklable_and_cover_kinds_and_languages(rules):
    assert rules.selectors and rules.phrases and rules.version
    assert pickle.loads(pickle.dumps(rules)) == rules
    kinds = {r.kind for r in rules.selectors} | {r.kind for r in rules.phrases}
    assert kinds <= set(BOILERPLATE_KINDS)
    assert {"ad", "donation", "newsletter", "subscription", "social", "related", "comments",
            "navigation", "copyright", "other"} <= kinds
    # the bundled phrase rules cover four languages (``lang`` labels the patterns for readers of the files)
    import tomllib

    from newsmill.tasks.config import RULES_DIR

    langs = {lang for f in RULES_DIR.glob("*.toml") for ph in tomllib.loads(f.read_text("utf-8")).get("phrases", [])
             for lang in str(ph.get("lang", "")).split(",")}
    assert {"en", "es", "de", "fr"} <= langs
    names = [r.name for r in rules.phrases] + [r.name for r in rules.selectors]
    assert len(names) == len(set(names)), "rule names are unique"


@pytest.mark.parametrize("label", ["Advertisement", "ADVERTISEMENT", "300x250 Ad", "Publicidad", "Anzeige",
                                   "Publicité", "— Advertisement —"])
def test_ad_labels_in_several_languages(rules, label):
    page = page_of(f"<article><p>{PARA}</p><div>{label}</div><p>{PARA}</p></article>")
    removals = clean_tree(page, rules)
    assert [(r.kind, r.text) for r in removals] == [("ad", label)]
    assert removals[0].rule.startswith("ad.label.")
    assert label not in body_text(page)
    assert body_text(page).count("town council") == 2


@pytest.mark.parametrize("line,kind", [
    ("Support quality journalism, like the story above, with your gift right now.", "donation"),
    ("Sign up for our newsletter", "newsletter"),
    ("Subscribe to the Morning Briefing newsletter", "newsletter"),
    ("Suscríbete a nuestro boletín diario", "newsletter"),
    ("Jetzt den Newsletter abonnieren", "newsletter"),
    ("Inscrivez-vous à notre newsletter", "newsletter"),
    ("Subscribe now for unlimited access", "subscription"),
    ("Already a subscriber? Log in", "subscription"),
    ("Read more: Council approves the new bridge", "related"),
    ("Related: Five things to know about the levy", "related"),
    ("Lesen Sie auch: Der Haushalt im Überblick", "related"),
    ("Lea también: El presupuesto municipal", "related"),
    ("À lire aussi : Le budget de la ville", "related"),
    ("Jetzt spenden", "donation"),
    ("Haz una donación hoy", "donation"),
    ("Faites un don", "donation"),
    ("Share this article on Facebook", "social"),
    ("Leave a comment", "comments"),
])
def test_prompts_inside_article_as_plain_paragraphs(rules, line, kind):
    page = page_of(f"<article><p>{PARA}</p><p>{line}</p><p>{PARA}</p></article>")
    removals = clean_tree(page, rules)
    assert [r.kind for r in removals] == [kind], removals
    assert removals[0].text == line
    assert line not in body_text(page)


@pytest.mark.parametrize("sentence", [
    "After months of debate the county accepted a donation of farmland from a retired teacher, officials said.",
    "The district will advertise the open positions next month and hopes to fill them before autumn.",
    "Die Gemeinde richtete ein Spendenkonto für Betroffene ein, nachdem das Hochwasser mehrere Häuser beschädigt hatte.",
    "Readers who subscribe to the print edition were asked about the redesign in a survey last spring.",
    "Related problems surfaced when engineers inspected the old bridge: rust, cracked bolts and loose rails.",
])
def test_article_sentences_mentioning_phrases_survive(rules, sentence):
    page = page_of(f"<article><p>{PARA}</p><p>{sentence}</p><p>{PARA}</p></article>")
    assert clean_tree(page, rules) == []
    assert sentence in body_text(page)


def test_phrase_inside_a_longer_paragraph_survives(rules):
    para = f"{PARA} Advertisement revenue fell, the treasurer said. Support quality journalism was her motto."
    page = page_of(f"<article><p>{para}</p></article>")
    assert clean_tree(page, rules) == []


def test_selectors_share_related_newsletter_comments(rules):
    page = page_of(f"""
      <article>
        <div class="share-bar"><a>Facebook</a><a>Twitter</a><a>Email</a></div>
        <p>{PARA}</p>
        <div class="newsletter-signup"><h3>Morning brief</h3><form><input></form></div>
        <p>{PARA}</p>
        <aside class="related-articles"><ul><li><a>Budget vote delayed</a></li><li><a>Library hours</a></li></ul></aside>
        <div id="comments"><p>Great story!</p></div>
      </article>""")
    removals = clean_tree(page, rules)
    got = {(r.kind, r.rule) for r in removals}
    assert ("social", "social.share") in got
    assert ("newsletter", "newsletter.signup") in got
    assert ("related", "related.list") in got
    assert ("comments", "comments.section") in got
    text = body_text(page)
    assert text.count("town council") == 2
    for gone in ("Facebook", "Morning brief", "Library hours", "Great story"):
        assert gone not in text


def test_ad_slot_classes_but_not_lookalikes(rules):
    page = page_of(f"""
      <div class="header"><div class="masthead">Daily Example</div></div>
      <div class="ad-slot" id="div-gpt-ad-1">ad code</div>
      <div class="shadow-box"><p>{PARA}</p></div>
      <div class="leaderboard ad">banner</div>""")
    removals = clean_tree(page, rules)
    assert {r.text for r in removals if r.kind == "ad"} == {"ad code", "banner"}
    assert "Daily Example" in body_text(page) and "town council" in body_text(page)


def test_selector_guard_keeps_a_wrapper_holding_the_article(rules):
    page = page_of(f"""<div class="page has-ads ad-wrapper"><p>{PARA}</p><p>{PARA}</p><p>{PARA}</p>
                     <div class="ad-unit">slot</div></div>""")
    removals = clean_tree(page, rules)
    assert [r.text for r in removals] == ["slot"]
    assert body_text(page).count("town council") == 3


def test_tail_text_of_a_removed_element_is_kept(rules):
    page = page_of("<div><p>First part of the story.<br>"
                   "<span class='ad'>buy now</span> and the sentence goes on after the slot.</p></div>")
    clean_tree(page, rules)
    text = body_text(page)
    assert "buy now" not in text
    assert "and the sentence goes on after the slot." in text


def test_recurring_fingerprints_remove_short_blocks_only(rules):
    line = "Our reporters rely on the Friends of the Valley Gazette fund."
    page = page_of(f"<article><p>{PARA}</p><p>{line}</p><p>{PARA}</p></article>")
    removals = clean_tree(page, rules, frozenset({block_fingerprint(line)}))
    assert [(r.kind, r.rule, r.text) for r in removals] == [("recurring", "recurring", line)]
    # a block that is most of a page's text is never removed as recurring
    page = page_of(f"<article><p>{line}</p></article>")
    assert clean_tree(page, rules, frozenset({block_fingerprint(line)})) == []


def test_text_blocks_fingerprints_are_case_and_space_insensitive():
    page = page_of("<div><p>Hello   World, this is a block.</p><p>hello world, THIS is a block.</p></div>")
    keys = [b.key for b in text_blocks(page) if b.el.tag == "p"]
    assert keys[0] == keys[1] is not None


def test_site_override_by_domain_not_code(tmp_path):
    generic = {"ad.toml": {"kind": "ad", "phrases": [{"name": "ad.label", "patterns": ["advertisement"]}]}}
    sites = {"example.org": {"domain": "example.org",
                             "selectors": [{"name": "promo", "kind": "other", "css": "div.house-promo"}],
                             "phrases": [{"name": "pledge", "kind": "donation",
                                          "patterns": ["keep the valley informed.*"]}],
                             "metadata": {"site_name": "Example Org"}}}
    rules = rules_from_dicts(generic, sites)
    body = f"<p>{PARA}</p><div class='house-promo'>Tote bags!</div><p>Keep the Valley informed: chip in.</p>"
    page = page_of(body, "https://www.news.example.org/a")
    got = {(r.kind, r.rule) for r in clean_tree(page, rules)}
    assert got == {("other", "site:example.org:promo"), ("donation", "site:example.org:pledge")}
    assert rules.site_rule("news.example.org").site_name == "Example Org"
    other = page_of(body, "https://elsewhere.example.com/a")
    assert clean_tree(other, rules) == []


def test_clean_lines_text_scope(rules):
    lines = ["A real paragraph of the story that goes on for a while.", "Copyright 2019 NPR. To see more, visit",
             "___", "READ MORE: Council approves bridge"]
    kept, removals = clean_lines(lines, rules, "example.org", URL)
    assert kept == lines[:1]
    assert [r.kind for r in removals] == ["copyright", "other", "related"]
    # the short list items right after a related teaser go with it; a later list stays
    lines = ["Body text of the story goes here and runs on.", "Related: More on the bridge", "- Bridge vote",
             "- Ferry schedule", "The story continues after the list.", "- a list item of the story"]
    kept, removals = clean_lines(lines, rules, "example.org", URL)
    assert kept == [lines[0], lines[4], lines[5]]
    assert [r.rule for r in removals] == ["related.teaser.en"] * 3


def test_embedded_social_posts_are_content(rules):
    page = page_of(f"<article><p>{PARA}</p><div class='social-media-embed'><blockquote class='twitter-tweet'>"
                   "<p>A quoted post that is part of the story.</p></blockquote></div><p>{PARA}</p></article>")
    assert clean_tree(page, rules) == []


@pytest.mark.parametrize("data,needle", [
    ({"x.toml": {"kind": "adverts"}}, "kind"),
    ({"x.toml": {"kind": "ad", "phrases": [{"name": "p", "patterns": ["(unclosed"]}]}}, "bad regex"),
    ({"x.toml": {"kind": "ad", "phrases": [{"patterns": ["x"]}]}}, "name"),
    ({"x.toml": {"kind": "ad", "selectors": [{"name": "s"}]}}, "needs tokens"),
    ({"x.toml": {"kind": "ad", "phrases": [{"name": "p", "patterns": ["x"], "maxchars": 3}]}}, "unknown key"),
    ({"x.toml": {"kind": "ad", "selectors": [{"name": "s", "xpath": "//["}]}}, "XPath"),
])
def test_bad_rules_raise_config_error(data, needle):
    with pytest.raises(ConfigError, match=needle):
        rules_from_dicts(data)


def test_container_states_and_taxonomy_tokens_are_not_boilerplate_roles(rules):
    """Issue 12: article sections carrying "--ads"/"has-ads" states (ad slots go between them), WordPress
    taxonomy classes on the post itself ("category-no-newsletter-rss"), and "cmp-" components (Adobe AEM,
    OJS) were removed as ad/newsletter/cookie boxes, losing whole articles. Real slots still go."""
    page = page_of(f"""
      <article class="post type-post category-no-newsletter-rss tag-advertising entry">
        <section class="Report__Section Report__Section--Ads" id="part-1"><h2>First test</h2><p>{PARA}</p>
          <div class="Report__Ad">slot one</div></section>
        <section class="Report__Section with-ads" id="part-2"><p>{PARA}</p></section>
        <div class="cmp-container"><div class="cmp-text"><p>{PARA}</p></div></div>
        <div class="cmp_notification">You must be registered and logged in to submit.</div>
      </article>
      <div class="sidebar-ads">sidebar slot</div>
      <div class="cmpbox">We use cookies. Accept all</div>""")
    removals = clean_tree(page, rules)
    text = body_text(page)
    assert text.count("town council") == 3
    assert "You must be registered" in text
    assert {r.text for r in removals} == {"slot one", "sidebar slot", "We use cookies. Accept all"}


# ---- issue 12: inline donation/membership appeals and wire hub promo lines, per language -------------

@pytest.mark.parametrize("line,rule", [
    ("This reporting was made possible by readers like you. Donate now to support nonprofit journalism.",
     "donation.inline.en"),
    ("Our journalism is made possible by members like you. Become a member today.", "donation.inline.en"),
    ("If you value this reporting, please consider making a gift to support our newsroom.", "donation.inline.en"),
    ("The Prairie Ledger is a nonprofit newsroom that depends on readers. Donate today to keep local news free.",
     "donation.inline.en"),
    ("Please consider giving $10 a month to support independent reporting in the valley.", "donation.inline.en"),
    ("Dieser Artikel wurde durch unsere Leserinnen und Leser ermöglicht. Jetzt spenden und unabhängigen "
     "Journalismus unterstützen.", "donation.inline.de"),
    ("Unabhängiger Journalismus braucht Ihre Unterstützung. Jetzt Mitglied werden.", "donation.inline.de"),
    ("Cet article vous est offert grâce à nos lecteurs. Faites un don pour soutenir un journalisme indépendant.",
     "donation.inline.fr"),
    ("Notre journalisme dépend de vous : soutenez-nous.", "donation.inline.fr"),
    ("Este reportaje fue posible gracias a lectores como tú. Dona ahora para apoyar el periodismo independiente.",
     "donation.inline.es"),
    ("Nuestro periodismo independiente necesita tu apoyo. Hazte socio.", "donation.inline.es"),
    ("Follow AP's coverage of the drought at https://apnews.com/hub/drought.", "related.wire_hub.en"),
    ("More AP coverage of the war: https://apnews.com/hub/russia-ukraine", "related.wire_hub.en"),
    ("Follow AP’s live coverage of the summit here.", "related.wire_hub.en"),
    ("Weitere Nachrichten zum Thema unter https://www.dpa-news.example/thema/duerre", "related.wire_hub.de"),
    ("Verfolgen Sie die Entwicklungen in unserem Liveblog.", "related.wire_hub.de"),
    ("Retrouvez toute notre couverture de la sécheresse sur https://www.agence.example/dossier/secheresse",
     "related.wire_hub.fr"),
    ("Sigue toda la cobertura de la sequía en https://www.agencia.example/especial/sequia", "related.wire_hub.es"),
])
def test_inline_appeals_and_wire_hub_promos_in_article_markup(rules, line, rule):
    page = page_of(f"<article><p>{PARA}</p><p>{line}</p><p>{PARA}</p></article>")
    removals = clean_tree(page, rules)
    assert [(r.rule, r.text) for r in removals] == [(rule, line)]
    assert body_text(page).count("town council") == 2
    kept, removed = clean_lines([PARA, line], rules, "news.example.org")
    assert kept == [PARA] and [r.rule for r in removed] == [rule]


@pytest.mark.parametrize("sentence", [
    "The county accepted a donation of 40 acres for the new park, officials said on Tuesday.",
    "This reporting was made possible by a grant from the Knight Foundation.",
    "Readers like you wrote to the council to complain about the potholes on Main Street.",
    "ProPublica is a nonprofit newsroom that investigates abuses of power.",
    "If you value your privacy, turn off location tracking before you give your phone to a repair shop.",
    "News coverage of the trial was limited by the judge, who barred cameras from the courtroom.",
    "Der Kreis nahm eine Spende von 5000 Euro für das Tierheim an, sagte der Landrat.",
    "Die Berichterstattung über den Prozess war umfangreich, sagte der Richter.",
    "La mairie a accepté un don de la fondation pour rénover l'école.",
    "El ayuntamiento aceptó una donación de terrenos para el nuevo parque.",
    "Sigue la cobertura del juicio con atención, dijo el abogado.",
])
def test_news_about_donations_and_coverage_stays(rules, sentence):
    page = page_of(f"<article><p>{PARA}</p><p>{sentence}</p></article>")
    assert clean_tree(page, rules) == []
    assert clean_lines([sentence], rules, "news.example.org")[0] == [sentence]


@pytest.mark.parametrize("line,rule", [
    ("For the latest stories and breaking news updates download the Harbor News apps for iOS and Android.",
     "other.app.en"),
    ("LE PUEDE INTERESAR: La ficha del exalcalde en el juzgado", "related.teaser.es"),
    ("NOTAS RELACIONADAS", "related.teaser.es"),
    ("Schon gelesen? Neue Radwege für die Innenstadt", "related.teaser.de"),
    ("Zum Weiterlesen:", "related.teaser.de"),
])
def test_app_promo_lead_in_and_teaser_labels(rules, line, rule):
    kept, removed = clean_lines([PARA, line], rules, "news.example.org")
    assert kept == [PARA] and [r.rule for r in removed] == [rule]
    for prose in ("For more than a decade the city has tried to get the app developers to pay taxes.",
                  "For the latest news the mayor said residents should get the county app and turn on alerts."):
        assert clean_lines([prose], rules, "news.example.org")[0] == [prose]


def test_phrase_verdicts_follow_rule_order_and_max_chars_at_every_length():
    """The matcher groups rules by first character and length tier and memoises verdicts; whatever the
    grouping, a line goes to the first rule (in file order) that matches it whole and admits its length."""
    import re

    specs = [  # (name, pattern, max_chars): overlapping patterns, limits on both sides of every tier bound
        ("a.short", r"promo\b.*", 40), ("b.float", r".{0,20}\bpromo\b.*", 80), ("c.mid", r"promo code.*", 170),
        ("d.float", r"(?=.*\bsave\b).*promo.*", 300), ("e.long", r"promo.*", 450), ("f.any", r".*\bdeal\b.*", 600),
        # may start anywhere, tried only on blocks holding "special offer" (its gate); and one for blocks
        # without a word character
        ("g.gated", r".{0,30}\bspecial offers?\b.*", 200), ("h.rule", r"[*=~-]{3,}", 40)]
    generic = {"t.toml": {"kind": "other", "phrases": [
        {"name": n, "patterns": [p], "max_chars": m} for n, p, m in specs]}}
    rules = rules_from_dicts(generic)

    def expected(text):
        for name, pattern, max_chars in specs:
            if len(text) <= max_chars and re.fullmatch(rf"[\W_]*(?:{pattern})[\W_]*", text, re.I | re.S):
                return name
        return None

    texts = []
    # "\u017f" (long s) and "\u0131" (dotless i) match "s" and "i" under IGNORECASE but lower() keeps them
    for head in ("Promo", "promo code", "Our promo", "-- Save on this promo", "Big deal", "A plain line",
                 "Today: SPECIAL Offer", "Today: \u017fpecial offer", "Our spec\u0131al offers", "*** ===",
                 "Specials offer"):
        for length in (5, 39, 40, 41, 59, 60, 61, 79, 80, 81, 149, 150, 151, 169, 170, 171, 299, 300, 301,
                       449, 450, 451, 599, 600, 601):
            texts.append((head + " " + "x" * length)[:max(length, len(head))])
    assert len({expected(t) for t in texts}) == len(specs) + 1  # every rule wins somewhere, and none
    for _ in range(2):  # second round: memoised verdicts
        kept, removals = clean_lines(texts, rules, None)
        got = {r.text: r.rule for r in removals}
        assert [got.get(t) for t in texts] == [expected(t) for t in texts]
        assert kept == [t for t in texts if expected(t) is None]


def test_gated_phrase_rules_match_every_character_ignorecase_matches_to_an_ascii_letter():
    """Gated phrase patterns compare a block's lower() with ASCII literals; for the few characters that
    re.IGNORECASE matches to an ASCII letter although lower() keeps them ("\u017f" long s, dotless i, ...)
    the block must still be tried. Every such character of this Python's Unicode is checked."""
    import re
    import sys

    ascii_i = re.compile(r"[\x00-\x7f]", re.I)
    twins = [chr(c) for c in range(0x80, sys.maxunicode + 1) if ascii_i.fullmatch(chr(c))]
    assert twins  # long s and the Kelvin sign at least
    for twin in twins:
        letter = next(chr(a) for a in range(128) if re.fullmatch(re.escape(chr(a)), twin, re.I))
        word = f"zq{letter}qz"
        rules = rules_from_dicts({"t.toml": {"kind": "other", "phrases": [
            {"name": "t.gated", "patterns": [rf".{{0,20}}\b{word}\b.*"], "max_chars": 100}]}})
        line = f"see the zq{twin}qz here"
        kept, removals = clean_lines([line], rules, None)
        assert [r.rule for r in removals] == ["t.gated"], repr(twin)


def test_class_tokens_ruled_as_the_rules_say_whatever_the_token_gate_skips():
    """Class/id tokens holding none of the token rules' literals skip the combined token regex (most tokens:
    "row", "col-md-6"). A token's verdict is still the first rule (in file order) whose pattern matches
    it whole, case-insensitively, including the characters IGNORECASE matches to an ASCII letter although
    lower() keeps them ("\u017fhare" is "share" to the regex)."""
    import re

    specs = [("s.share", ["share", r".*[-_]share([-_].*)?"]), ("s.ads", [r"ads?", r"ad[-_].*"]),
             ("s.any", [r"(.*[-_])?(promo|teaser)box"])]
    rules = rules_from_dicts({"t.toml": {"kind": "other", "selectors": [
        {"name": n, "tokens": toks} for n, toks in specs]}})

    def expected(tok):
        for name, toks in specs:
            if any(re.fullmatch(t, tok, re.I) for t in toks):
                return f"{name}"
        return None

    tokens = ["share", "SHARE", "\u017fhare", "post-share-bar", "sharebar", "ad", "ADS", "ad-slot", "head",
              "header-ad", "bad", "promobox", "x-teaserbox", "teaser", "row", "col-md-6", "K-ad", "\u212aad",
              "a\u0131d", "sponsored-share"]
    assert {expected(t) for t in tokens} == {"s.share", "s.ads", "s.any", None}
    body = "".join(f'<div class="wrap {t}">item {i}</div>' for i, t in enumerate(tokens))
    page = page_of(f"<p>{PARA}</p>{body}")
    removed = {r.text: r.rule for r in clean_tree(page, rules)}
    assert [removed.get(f"item {i}") for i in range(len(tokens))] == [expected(t) for t in tokens]
