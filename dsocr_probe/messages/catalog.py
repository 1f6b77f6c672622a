"""The message catalog: what each finding says, keyed by its code and variant, worded at report time.

A finding carries a ``code``, a ``variant`` and ``params``, never prose. The English text of each
(code, variant) is a gettext msgid declared once in ``texts/<area>.toml``; other languages
are gettext catalogs (``locale/<lang>/LC_MESSAGES/dsocr_probe.po``). Texts use Python's ``%(name)s``
placeholders, which Babel checks between a msgid and its translation.

Besides plain values a param may hold

- a message (:func:`M`): a marked msgid with params of its own, worded in the report's language;
- a list of messages: worded and joined with "; ";
- a finding (:func:`ref`): the one that stopped this finding; ``%(name)s`` is its title and
  ``%(name_detail)s`` / ``%(name_fix)s`` its other texts, all in the report's language.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

DOMAIN = "dsocr_probe"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "ru")


def N_(msgid: str) -> str:
    """Marks ``msgid`` for extraction; it is translated where it is shown."""
    return msgid


@dataclass(frozen=True)
class Plural:
    """A text whose words follow a count: ``ngettext(singular, plural, params[count])``."""

    singular: str
    plural: str
    count: str


def NP_(singular: str, plural: str, count: str) -> Plural:
    """Marks a plural text for extraction; ``count`` names the param that chooses the form."""
    return Plural(singular, plural, count)


Template = Union[str, Plural]


@dataclass(frozen=True)
class Text:
    """The words of one finding variant: a title, and optionally what happened in detail and the fix."""

    title: Template
    detail: Template = ""
    fix: Template = ""

    def templates(self) -> dict[str, Template]:
        return {"title": self.title, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Rendered:
    title: str
    detail: str
    fix: str


class UnknownMessage(KeyError):
    """A finding whose (code, variant) the catalog does not have: a bug in the probe that made it."""


_TEXTS: dict[tuple[str, str], Text] = {}


def _define(code: str, variants: Mapping[str, Text], path: Path) -> None:
    """The texts of one code, one per variant name. A code ``*.what`` stands for ``<probe>.what`` of
    every probe that has no texts of its own."""
    for variant, text in variants.items():
        key = (code, variant)
        if key in _TEXTS:
            raise ValueError(f"{path.name}: message {code!r} variant {variant!r} is declared twice")
        _TEXTS[key] = text


TEXTS_DIR = Path(__file__).parent / "texts"
FIELDS = ("title", "detail", "fix")


@functools.lru_cache(maxsize=None)
def _load_texts() -> None:
    for path in sorted(TEXTS_DIR.glob("*.toml")):
        for code, variants in read_texts(path).items():
            _define(code, variants, path)


def read_texts(path: Path) -> dict[str, dict[str, Text]]:
    """One area's English texts: ``["code"]`` tables with title / detail / fix, or ``["code".variant]``
    tables, one per variant. A plural text is ``{ singular = "...", plural = "...", count = "param" }``."""
    data = _toml(path)
    out: dict[str, dict[str, Text]] = {}
    for code, table in data.items():
        variants: dict[str, Text] = {}
        fields = {key: table[key] for key in FIELDS if key in table}
        if fields:
            variants[""] = _text(path, code, fields)
        for variant, sub in table.items():
            if variant in FIELDS:
                continue
            if not isinstance(sub, dict) or "title" not in sub or set(sub) - set(FIELDS):
                raise ValueError(f"{path.name}: [{code!r}] has {variant!r}, which is neither a field nor a variant table")
            variants[variant] = _text(path, f"{code}.{variant}", sub)
        out[code] = variants
    return out


def _text(path: Path, where: str, fields: Mapping[str, Any]) -> Text:
    def template(value: Any) -> Template:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and set(value) == {"singular", "plural", "count"}:
            return Plural(value["singular"], value["plural"], value["count"])
        raise ValueError(f"{path.name}: {where}: a text is a string or {{ singular, plural, count }}, not {value!r}")

    return Text(**{key: template(value) for key, value in fields.items()})


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with path.open("rb") as fh:
        return tomllib.load(fh)


def all_texts() -> dict[tuple[str, str], Text]:
    _load_texts()
    return dict(_TEXTS)


def lookup(code: str, variant: str = "") -> Text:
    _load_texts()
    for key in ((code, variant), ("*." + code.partition(".")[2], variant)):
        if key in _TEXTS:
            return _TEXTS[key]
    raise UnknownMessage(f"no message for code {code!r} variant {variant!r}")


def has(code: str, variant: str = "") -> bool:
    try:
        lookup(code, variant)
    except UnknownMessage:
        return False
    return True


@functools.lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    """The gettext catalog of ``lang``, compiled in memory from its .po file; English is the msgids."""
    if lang == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        raise ValueError(f"no message catalog for language {lang!r} (looked for {path})")
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def M(msgid: str, **params: Any) -> dict[str, Any]:
    """A message as a param value: worded in the report's language when the finding is."""
    return {"msgid": msgid, "params": params}


def ref(code: str, variant: str, params: Mapping[str, Any], status: str = "") -> dict[str, Any]:
    """Another finding as a param value (the one that stopped this one)."""
    return {"code": code, "variant": variant, "params": dict(params), "status": status}


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"msgid", "params"}


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and {"code", "variant", "params"} <= set(value)


def word(value: Any, lang: str) -> Any:
    """A param, evidence or table value in ``lang``: messages worded, anything else as it is."""
    if is_message(value):
        return _format(value["msgid"], _params(value["params"], lang), lang, where=value["msgid"])
    if isinstance(value, list) and value and all(is_message(v) for v in value):
        return "; ".join(word(v, lang) for v in value)
    return value


def _params(params: Mapping[str, Any], lang: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_ref(value):
            inner = render_text(value["code"], value["variant"], value["params"], lang)
            out[name], out[name + "_detail"], out[name + "_fix"] = inner.title, inner.detail, inner.fix
        else:
            out[name] = word(value, lang)
    return out


def _format(template: Template, params: Mapping[str, Any], lang: str, *, where: str) -> str:
    if not template:
        return ""
    tr = translations(lang)
    if isinstance(template, Plural):
        count = params.get(template.count)
        if not isinstance(count, int):
            raise TypeError(f"{where}: plural count {template.count!r} is {count!r}, not an int")
        text = tr.ngettext(template.singular, template.plural, count)
    else:
        text = tr.gettext(template)
    try:
        return text % params
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"{where} ({lang}): {exc} in {text!r}") from None


def render_text(code: str, variant: str, params: Mapping[str, Any], lang: str = "en") -> Rendered:
    """The title, detail and fix of (code, variant) with ``params``, in ``lang``."""
    text = lookup(code, variant)
    values = _params(params, lang)
    where = f"{code}[{variant}]" if variant else code
    return Rendered(*(_format(t, values, lang, where=f"{where}.{key}") for key, t in text.templates().items()))
