"""Article metadata from a parsed page: one small function per field, one fixed fallback order.

Every field function takes the :class:`~tasks.parse.ParsedPage` (one lxml tree, the flattened JSON-LD
list, the meta dict, the rel-links dict) plus an optional :class:`SiteRule`, and walks its sources in a
fixed order, returning the first usable value::

    site rule (config/sites/<domain>.toml [metadata])  ->  JSON-LD article node  ->  meta tags  ->  visible page

Exceptions to the generic order, documented per field: ``site_name`` prefers ``og:site_name`` over the
JSON-LD publisher (the publisher of a syndicated story is often the wire, not the site), and
``canonical_url`` is rel=canonical -> og:url -> page URL.

Authors (:func:`authors_of`): every source's byline strings are split into names and each name is
classified with the vocabularies of ``config/authors.toml`` (prefixes, UI strings, degrees, job titles,
newsroom roles, wire credits) as a person, a user handle, an organisation or role credit, or nothing. The
first source naming a person wins (site rule, JSON-LD, meta, visible byline nodes, an unmarked body
byline, trafilatura's own author XPaths on the same tree); handles, then organisations, only when no
source names a person.

Dates: ``published_at`` is the instant (its written offset kept; the warehouse stores UTC);
``published_date`` is the calendar date as the publisher printed it, in the publisher's own zone
(:func:`publisher_day`).

Errors are values: malformed JSON-LD, unparseable dates, odd meta values give ``None`` (or an empty
tuple), never an exception. Nothing here re-parses the HTML; htmldate (the last date fallback) is
given the lxml tree (it deep-copies before pruning, so the tree is not mutated).

Public API: :class:`Metadata`, :class:`SiteRule`, :func:`site_rule_from_dict`, :func:`extract_metadata`,
plus helpers re-used by ``tasks.copyright`` and tests: :func:`article_node`, :func:`parse_date`,
:func:`parse_when`, :func:`published_when`, :func:`publisher_day`, :func:`clean_authors`.

Layout (private modules; import only the names in ``__all__`` from ``newsmill.tasks.metadata``; the JSON-LD
and text helpers it shares with ``tasks.copyright`` are the public module ``newsmill.tasks.jsonld``):

* ``_records`` -- ``Metadata``, ``SiteRule``, ``site_rule_from_dict``;
* ``_common`` -- element text, meta values, JSON-LD names, shared by the field modules;
* ``_title_site`` -- title, site name, canonical URL, description, tags, image, paywall, language;
* ``_authors`` -- authors (``clean_authors``); ``_dates`` -- ``published_when``, ``publisher_day``, ``parse_when``;
* ``_extract`` -- ``extract_metadata``.
"""

from newsmill.tasks.jsonld import article_node
from newsmill.tasks.metadata._authors import clean_authors
from newsmill.tasks.metadata._dates import When, parse_date, parse_when, published_when, publisher_day
from newsmill.tasks.metadata._extract import extract_metadata
from newsmill.tasks.metadata._records import Metadata, SiteRule, site_rule_from_dict

__all__ = [
    "Metadata",
    "SiteRule",
    "site_rule_from_dict",
    "extract_metadata",
    "article_node",
    "parse_date",
    "parse_when",
    "When",
    "published_when",
    "publisher_day",
    "clean_authors",
]
