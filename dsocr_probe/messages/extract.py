"""Keep the translations in step with the code: extract every msgid with Babel, update and check a catalog.

Used by ``scripts/messages.py`` (the maintainer's command) and the tests. Babel reads the marks
``N_`` / ``NP_`` in the package's Python files and ``_()`` / ``ngettext`` in the report templates
(through ``jinja2.ext.i18n``).
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from typing import Iterator

from .catalog import DOMAIN, LOCALE_DIR

PACKAGE = Path(__file__).resolve().parents[1]
TEMPLATES = PACKAGE.parent / "templates"  # the source tree's folder (installed as dsocr_probe.templates)
KEYWORDS = {"N_": None, "NP_": (1, 2), "_": None, "gettext": None, "ngettext": (1, 2)}


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _templates_dir() -> Path:
    if TEMPLATES.is_dir():
        return TEMPLATES
    return PACKAGE / "templates"  # an installed package


def extract():
    """Every msgid of the package and its templates, as a Babel catalog template."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    template = Catalog(domain=DOMAIN, project="dsocr-probe")
    python = [("**/standin/files/**", "ignore"), ("**/messages/texts/*.toml", f"{__name__}:extract_texts"),
              ("**.py", "python")]
    for folder, method_map, options in (
        (PACKAGE, python, {}),
        (_templates_dir(), [("**.j2", "jinja2.ext:babel_extract")], {"**.j2": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}}),
    ):
        for filename, lineno, message, comments, context in extract_from_dir(
            str(folder), method_map, options, keywords=KEYWORDS, comment_tags=("Translators:",), strip_comment_tags=True
        ):
            where = f"{folder.name}/{filename}"
            template.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return template


def extract_texts(fileobj, keywords, comment_tags, options):
    """Babel's extraction method for the English texts (``messages/texts/*.toml``): every title, detail
    and fix, with the line it is on."""
    from .catalog import Plural, read_texts

    source = fileobj.read().decode("utf-8")
    lines = source.splitlines()
    path = Path(getattr(fileobj, "name", "texts.toml"))

    def line_of(text: str) -> int:
        probe = text[:40].replace("\\", "\\\\").replace('"', '\\"')
        return next((i for i, line in enumerate(lines, 1) if probe in line), 0)

    for code, variants in read_texts(path).items():
        for text in variants.values():
            for template in text.templates().values():
                if isinstance(template, Plural):
                    yield line_of(template.singular), "ngettext", (template.singular, template.plural), []
                elif template and not _only_placeholders(template):
                    yield line_of(template), "gettext", template, []


def read(lang: str):
    from babel.messages.pofile import read_po

    with po_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def write(catalog, lang: str) -> Path:
    from babel.messages.pofile import write_po

    catalog.revision_date = datetime.datetime.now(datetime.timezone.utc)
    catalog.fuzzy = False
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=116, sort_by_file=True, omit_header=False, ignore_obsolete=True)
    path = po_path(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def new_catalog(lang: str):
    """An empty catalog for ``lang``, with the project's header."""
    from babel.messages.catalog import Catalog

    from .. import __version__

    catalog = Catalog(locale=lang, domain=DOMAIN, project="dsocr-probe", version=__version__,
                      copyright_holder="the dsocr-probe authors", msgid_bugs_address="",
                      last_translator="the dsocr-probe authors", language_team=lang)
    catalog.header_comment = (f"# The {lang} texts of dsocr-probe's reports and terminal lines.\n"
                              "# The msgids are the English texts (dsocr_probe/messages/texts/*.toml, the marks in the code\n"
                              "# and the report template); `python scripts/messages.py update` brings this file in step.")
    return catalog


def update(lang: str):
    """The language's catalog brought in step with the code: new msgids added untranslated, gone ones dropped."""
    catalog = read(lang) if po_path(lang).is_file() else new_catalog(lang)
    catalog.update(extract(), no_fuzzy_matching=True)
    return catalog


def problems(lang: str) -> Iterator[str]:
    """What is wrong with a language's catalog: untranslated, fuzzy or stale entries, and translations
    whose ``%(name)s`` placeholders differ from their msgid's (what ``msgfmt --check`` finds)."""
    current = {_key(m.id): m for m in extract() if m.id}
    catalog = read(lang)
    seen = set()
    for message in catalog:
        if not message.id:
            continue
        key = _key(message.id)
        seen.add(key)
        where = f"{po_path(lang).name}: {_show(message.id)!r}"
        if key not in current:
            yield f"{where}: no longer in the code (run `python scripts/messages.py update`)"
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            yield f"{where}: not translated"
        if message.fuzzy:
            yield f"{where}: marked fuzzy"
        for error in message.check(catalog):
            yield f"{where}: {error}"
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        want = set().union(*(_names(i) for i in ids))
        for s in strings:
            if s and _names(s) != want:
                yield f"{where}: placeholders {sorted(_names(s))} differ from the msgid's {sorted(want)}"
    for key, message in current.items():
        if key not in seen:
            yield f"{po_path(lang).name}: {_show(message.id)!r}: missing (run `python scripts/messages.py update`)"


def _only_placeholders(text: str) -> bool:
    """A text that is only values (``%(traceback)s``): nothing to translate."""
    import re

    return re.fullmatch(r"(?:%\(\w+\)s\s*)+", text) is not None


def _key(msgid) -> str:
    return msgid[0] if isinstance(msgid, tuple) else msgid


def _show(msgid) -> str:
    text = _key(msgid)
    return text if len(text) <= 80 else text[:77] + "..."


def _names(text: str) -> set[str]:
    import re

    return set(re.findall(r"%\((\w+)\)", text))
