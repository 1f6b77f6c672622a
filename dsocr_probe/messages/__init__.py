"""Every word of output: the message catalog (English msgids, gettext catalogs of other languages).

The bottom layer: it imports nothing else of the package, so the findings model, the probes and the
report can all name messages. ``texts/<area>.toml`` holds what each finding code says in English (the
msgids), ``locale/<lang>/LC_MESSAGES/dsocr_probe.po`` the translations.
"""

from .catalog import (
    LANGUAGES,
    NP_,
    M,
    N_,
    Plural,
    Rendered,
    Text,
    UnknownMessage,
    all_texts,
    has,
    lookup,
    ref,
    render_text,
    translations,
    word,
)

__all__ = [
    "LANGUAGES", "NP_", "M", "N_", "Plural", "Rendered", "Text", "UnknownMessage", "all_texts", "has",
    "lookup", "ref", "render_text", "translations", "word",
]
