"""Language of an article: py3langid on the extracted text; the page's declared language (``<html lang>``
or a site hint, as normalised by ``tasks.metadata``) when the text is too short to judge.

Public API: :func:`detect_language`.
"""

from __future__ import annotations

__all__ = ["detect_language", "load_model"]

_SAMPLE_CHARS = 1500  # langid's accuracy saturates long before this; keeps the cost flat


def load_model() -> None:
    """Load py3langid's model now (it is otherwise loaded by the first classification). Best effort."""
    try:
        import py3langid

        py3langid.classify("the first classification loads the model")
    except Exception:  # noqa: BLE001 - detect_language falls back the same way
        pass


def _primary(tag: str | None) -> str | None:
    if not tag or not isinstance(tag, str):
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def detect_language(text: str, *, html_lang: str | None = None, min_chars: int = 40) -> str | None:
    """ISO 639-1 code of ``text`` (e.g. ``"en"``), ``html_lang``'s primary subtag for short text, or None."""
    sample = (text or "").strip()
    if len(sample) < min_chars:
        return _primary(html_lang)
    try:
        import py3langid

        lang, _score = py3langid.classify(sample[:_SAMPLE_CHARS])
    except Exception:  # noqa: BLE001 - a classifier failure must not fail the page
        return _primary(html_lang)
    return lang or _primary(html_lang)
