"""Vocabulary of copyright notices: the marks, rights phrases, legal forms, republication phrases and
Creative Commons words (en/de/fr/es/it) as regular expressions and word sets."""

from __future__ import annotations

import re

_YEAR = r"(?:19|20)\d{2}"
_YEAR_RANGE = re.compile(rf"(?<!\d)({_YEAR})(?:\s*[-–—/]\s*({_YEAR}|\d{{2}}))?(?!\d)")
_MARK = re.compile(
    r"^\W{0,3}?(?P<mark>©\s*(?:copyright\b)?|\(c\)|&copy;|copyright\b\s*(?:©|\(c\))?|copr\.\s*(?:©)?)\s*",
    re.I,
)
_RIGHTS = re.compile(
    r"\b(?:all\s+rights\s+reserved|alle\s+rechte\s+(?:vorbehalten|reserviert)|tous\s+droits\s+r[ée]serv[ée]s"
    r"|todos\s+los\s+derechos\s+reservados|reservados\s+todos\s+los\s+derechos"
    r"|derechos\s+reservados|tutti\s+i\s+diritti\s+riservati|some\s+rights\s+reserved)\b\.?",
    re.I,
)
_TAILS = re.compile(
    r"\b(?:to\s+see\s+more|for\s+more|visit\s+|used\s+with\s+permission|reprinted\s+with|this\s+material"
    r"|may\s+not\s+be|distributed\s+by|privacy|terms\s+of|impressum|datenschutz|aviso\s+legal"
    r"|mentions\s+l[ée]gales|powered\s+by|or\s+its\s+affiliat\w*|and/or\s+its|and\s+its\s+licensors"
    r"|a\s+(?:division|subsidiary|unit|member|service)\s+of|part\s+of|an?\s+\w+\s+company)\b.*$",
    re.I,
)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_LEGAL_FORMS = re.compile(
    r"(?:,?\s+(?:inc\.?|incorporated|llc\.?|l\.l\.c\.|ltd\.?|limited|plc|gmbh(?:\s*&\s*co\.?\s*kg)?|ag|se"
    r"|s\.a\.?|s\.l\.?|sas|s\.a\.s\.?|corp\.?|corporation|l\.?p\.?|pvt\.?|private\s+limited|pty"
    r"|b\.v\.?|n\.v\.?|oy|ab|as|a/s|s\.p\.a\.?|s\.r\.l\.?|kg|ohg|e\.v\.?))+\s*$",
    re.I,
)
_CONNECTORS = {
    "of", "and", "&", "for", "the", "de", "del", "la", "las", "los", "el", "y", "und", "für", "der", "die",
    "das", "du", "des", "le", "les", "et", "e", "di", "da", "van", "von", "on", "in", "at", "a", "an",
    "its", "licensors", "by", "+",
}
_ABBREV = {"inc", "co", "corp", "ltd", "jr", "sr", "st", "mr", "mrs", "ms", "dr", "no", "vs", "bros"}

_REPUBLISHED = [
    # en
    re.compile(r"^(?:\W*(?:editor'?s\s+note|note)\s*:\s*)?(?:this|the)\s+(?:article|story|piece|report|post|"
               r"column|essay|interview)\s+(?:was\s+|is\s+)?(?:first|originally)\s+(?:appeared|published|"
               r"ran|posted)\s+(?:on|in|at|by|with)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:this|the)\s+(?:article|story|piece|report|post)\s+(?:first|originally)\s+"
               r"(?:appeared|ran)\s+(?:on|in|at)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:\W*)?(?:originally|first)\s+(?:published|appeared)\s+(?:on|in|at|by)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:this\s+(?:article|story)\s+(?:is|was|has\s+been)\s+)?(?:republished|reprinted|reproduced)"
               r"\s+(?:here\s+)?(?:with\s+permission\s+)?(?:from|of|by|courtesy\s+of)\s+(?P<holder>.+)", re.I),
    # es
    re.compile(r"^(?:este|el)\s+(?:artículo|articulo|texto|reportaje|contenido)\s+(?:se\s+publicó|fue\s+publicado|"
               r"apareció|se\s+publico)\s+(?:originalmente|primero|por\s+primera\s+vez|inicialmente)\s+"
               r"(?:en|por)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:publicado|artículo\s+publicado)\s+originalmente\s+(?:en|por)\s+(?P<holder>.+)", re.I),
    # de
    re.compile(r"^(?:dieser|der)\s+(?:artikel|beitrag|text)\s+(?:erschien|ist)\s+(?:zuerst|ursprünglich|"
               r"erstmals)\s+(?:bei|in|auf|im)\s+(?P<holder>.+)", re.I),
    re.compile(r"^(?:zuerst|ursprünglich|erstmals)\s+(?:erschienen|veröffentlicht)\s+(?:bei|in|auf|im)\s+"
               r"(?P<holder>.+)", re.I),
    # fr
    re.compile(r"^(?:cet\s+article|l'article|ce\s+texte)\s+a\s+(?:d'abord\s+|initialement\s+|originellement\s+)?"
               r"été\s+(?:initialement\s+|originellement\s+|d'abord\s+)?publié\s+(?:initialement\s+|"
               r"originellement\s+|d'abord\s+)?(?:par|sur|dans)\s+(?P<holder>.+)", re.I),
]
_HOLDER_STOP = re.compile(
    r"\s+(?:and|y|und|et|e|under|bajo|unter|sous|with|con|mit|avec|as|como|als|comme|on|el|am|le|in\s+(?:19|20)\d\d)\b"
    r"|[,.;:(\[|]\s|[,;(\[|]|\.$",
    re.I,
)
_LICENSE_LINE = re.compile(
    r"^(?:\W*)(?:this\s+(?:work|article|story|content|post|text)\s+is\s+)?(?:licen[cs]ed\s+under|"
    r"published\s+under|available\s+under|under\s+(?:a|the)\s+creative\s+commons|creative\s+commons|cc[\s-]?by|"
    r"cc0|(?:esta\s+obra|este\s+(?:artículo|contenido))\s+(?:está|se\s+publica)\s+bajo|bajo\s+licencia|"
    r"(?:dieser?\s+(?:werk|artikel|beitrag|text)\s+)?(?:steht|ist)\s+unter|lizenziert\s+unter|"
    r"(?:cette\s+œuvre|cet\s+article)\s+est\s+(?:mise?\s+à\s+disposition\s+)?sous|sous\s+licence)",
    re.I,
)
_MAX_LINE = 400


_CC_WORDS = {
    "by": r"attribution|atribuci[oó]n|reconocimiento|namensnennung|paternit[ée]|attribuzione",
    "nc": r"non[\s-]?commercial|no[\s-]?comercial|nicht[\s-]?kommerziell|pas\s+d'utilisation\s+commerciale|"
          r"non\s+commerciale",
    "nd": r"no[\s-]?derivatives?|no[\s-]?derivs|no\s+derivative\s+works|sin[\s-]?derivadas|sin\s+obra\s+derivada|"
          r"keine\s+bearbeitungen?|pas\s+de\s+modification|non\s+opere\s+derivate",
    "sa": r"share[\s-]?alike|compartir[\s-]?igual|weitergabe\s+unter\s+gleichen\s+bedingungen|"
          r"partage\s+dans\s+les\s+m[êe]mes\s+conditions|condividi\s+allo\s+stesso\s+modo",
}
