"""The message catalogs, for maintainers.

    python scripts/messages.py update [LANG]   # add new msgids to locale/LANG (untranslated), drop gone ones
    python scripts/messages.py check [LANG]    # list untranslated, fuzzy and stale entries, placeholder errors

LANG defaults to every language besides English (the msgids are the English text).
"""

from __future__ import annotations

import sys

from dsocr_probe.messages import LANGUAGES
from dsocr_probe.messages import extract


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("update", "check"):
        print(__doc__.strip(), file=sys.stderr)
        return 4
    langs = argv[1:] or [lang for lang in LANGUAGES if lang != "en"]
    status = 0
    for lang in langs:
        if argv[0] == "update":
            path = extract.write(extract.update(lang), lang)
            print(f"updated {path}")
        else:
            found = list(extract.problems(lang))
            for line in found:
                print(line)
            print(f"{lang}: {len(found)} problem(s)")
            status = status or int(bool(found))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
