"""Rule classes added in issue 12 (dev-set leaks measured by bench/trafilatura_eval.py, phrased as the
general publishing patterns): German related-content lead-ins and bare "more topics" labels, Polish
"Czytaj też:" lead-ins, German blog advertising disclosures. Each removal case comes with prose that starts
with the same words and must stay. Lines written for the test, in the style of publishers' pages."""

from __future__ import annotations

import pytest

from newsmill.tasks.clean import clean_lines, clean_tree, load_rules
from newsmill.tasks.parse import parse_html

PARA = ("Der Gemeinderat hat am Dienstagabend den Haushalt für das kommende Jahr beschlossen und dabei "
        "auch die Sanierung der Grundschule am Mühlbach auf den Weg gebracht.")


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.mark.parametrize("line,rule", [
    ("Auch lesen: Diese fünf Wanderwege führen zu den schönsten Aussichtspunkten", "related.teaser.de"),
    ("Das Thema könnte dich auch interessieren:", "related.teaser.de"),
    ("Dieses Thema könnte Sie auch interessieren: Neue Radwege für die Innenstadt", "related.teaser.de"),
    ("Mehr Themen:", "related.teaser.de"),
    ("Weitere Themen", "related.teaser.de"),
    ("Czytaj też: Nowy most na Wiśle otwarty dla ruchu", "related.teaser.pl"),
    ("Zobacz także: Ranking najlepszych szkół w regionie", "related.teaser.pl"),
    ("Dowiedz się więcej: Jak głosowali radni w sprawie budżetu?", "related.teaser.pl"),
    ("Anzeige, enthält Affiliate Links", "ad.disclosure.de"),
    ("*Werbung. Dieser Beitrag enthält Werbung für Bergfreund Outdoor.", "ad.disclosure.de"),
    ("Werbung | Dieser Artikel enthält Affiliate-Links", "ad.disclosure.de"),
])
def test_labels_removed_in_tree_and_text(rules, line, rule):
    page = parse_html(f"<html><body><article><p>{PARA}</p><p>{line}</p><p>{PARA}</p></article></body></html>",
                      "https://zeitung.example/lokales/haushalt")
    removals = clean_tree(page, rules)
    assert [(r.rule, r.text) for r in removals] == [(rule, line)]
    kept, removed = clean_lines([PARA, line], rules, "zeitung.example")
    assert kept == [PARA] and [r.rule for r in removed] == [rule]


@pytest.mark.parametrize("sentence", [
    "Weitere Themen der Sitzung waren der Winterdienst und die Sicherheit auf dem Schulweg.",
    "Mehr Themen als im Vorjahr standen diesmal auf der Tagesordnung, sagte die Bürgermeisterin.",
    "Auch lesen kann man in der neuen Stadtbibliothek jetzt bis 22 Uhr.",
    "Das Thema könnte dich auch in der Prüfung erwarten, warnte die Lehrerin.",
    "Czytaj też książki, które poleca miejska biblioteka, zachęcali organizatorzy.",
    "Dowiedz się więcej o historii miasta podczas sobotniego spaceru z przewodnikiem.",
    "Werbung enthält oft Übertreibungen, sagt die Verbraucherzentrale.",
    "Anzeige erstattet: Die Polizei ermittelt nach dem Einbruch in die Bäckerei.",
    "Der Beitrag enthält Werbung für das Stadtfest, beschwerte sich ein Leser im Gemeinderat.",
])
def test_prose_with_the_same_words_stays(rules, sentence):
    page = parse_html(f"<html><body><article><p>{PARA}</p><p>{sentence}</p></article></body></html>",
                      "https://zeitung.example/lokales/haushalt")
    assert clean_tree(page, rules) == []
    assert clean_lines([sentence], rules, "zeitung.example")[0] == [sentence]
