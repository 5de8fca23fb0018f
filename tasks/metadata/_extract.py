"""``extract_metadata``: every field of a page, each one an error-as-value."""

from __future__ import annotations

from newsmill.tasks.metadata._authors import authors_of
from newsmill.tasks.metadata._common import _safe
from newsmill.tasks.metadata._dates import _lazy_times, modified_of, published_when, publisher_day
from newsmill.tasks.metadata._records import Metadata, SiteRule
from newsmill.tasks.metadata._title_site import (canonical_url_of, description_of, image_url_of, language_of,
                                                 paywalled_of, site_name_of, tags_of, title_of)
from newsmill.tasks.parse import ParsedPage

# ---------------------------------------------------------------------------------------------------


def extract_metadata(page: ParsedPage, site: SiteRule | None = None) -> Metadata:
    """All metadata fields of ``page``; never raises for data problems."""
    times = _lazy_times(page)
    when = _safe(lambda p, s: published_when(p, s, times), page, site)
    return Metadata(
        title=_safe(title_of, page, site),
        authors=_safe(authors_of, page, site) or (),
        published_at=when.at if when else None,
        published_date=_safe(lambda p, _s: publisher_day(p, when, times), page, site),
        modified_at=_safe(modified_of, page, site),
        site_name=_safe(site_name_of, page, site),
        canonical_url=_safe(canonical_url_of, page, site),
        description=_safe(description_of, page, site),
        tags=_safe(tags_of, page, site) or (),
        image_url=_safe(image_url_of, page, site),
        paywalled=_safe(paywalled_of, page, site),
        html_lang=_safe(language_of, page, site),
    )
