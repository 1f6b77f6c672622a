"""Translations of finding texts, keyed by the finding's code and formatted with its params.

Probes write English. A code missing here is shown in English, so a new finding never
disappears from a Russian report; it is only untranslated until it is added.
"""

from __future__ import annotations

from typing import Any

from .findings import Finding

RU: dict[str, dict[str, str]] = {}


def translate(f: Finding, lang: str) -> dict[str, Any]:
    text = {"title": f.title, "detail": f.detail, "fix": f.fix}
    if lang == "ru" and f.code in RU:
        for key, template in RU[f.code].items():
            try:
                text[key] = template.format(**f.params)
            except (KeyError, IndexError, ValueError):
                pass  # a missing param keeps the English text rather than a broken sentence
    return text
