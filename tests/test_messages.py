"""The message catalog: every finding code the package raises has its texts, every text is used, and the
Russian catalog is complete with the same placeholders as the English msgids (Babel's python-format
check and a stricter same-names check)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import dsocr_probe
from dsocr_probe import messages
from dsocr_probe.findings import Finding, Status
from dsocr_probe.messages import extract

PACKAGE = Path(dsocr_probe.__file__).parent
MAKERS = {"passed": 0, "warn": 0, "fail": 0, "skip": 0, "finding": 0, "Finding": 1, "InputError": 0}


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "standin/files" not in path.as_posix():
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _literal(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _sites():
    """(file:line, code, variant) of every finding made with a literal code; variant None when computed."""
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else None
            if name not in MAKERS or len(node.args) <= MAKERS[name]:
                continue
            code = _literal(node.args[MAKERS[name]])
            if code is None or "." not in code:
                continue
            rest = node.args[MAKERS[name] + 1:]
            given = [kw.value for kw in node.keywords if kw.arg == "variant"]
            variant_node = rest[0] if rest else given[0] if given else None
            variant = "" if variant_node is None else _literal(variant_node)
            yield f"{path.relative_to(PACKAGE)}:{node.lineno}", code, variant


def test_every_literal_finding_code_has_its_texts():
    missing = []
    for where, code, variant in _sites():
        if variant is None:
            if not any(c == code or c == "*." + code.partition(".")[2] for c, _ in messages.all_texts()):
                missing.append((where, code, "(any variant)"))
        elif not messages.has(code, variant):
            missing.append((where, code, variant))
    assert not missing, "findings whose (code, variant) the catalog lacks:\n" + "\n".join(map(str, missing))


def test_every_text_in_the_catalog_is_used():
    """A code is used when a string of the package is that code, or an f-string can make it."""
    words, patterns = set(), []
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.add(node.value)
            elif isinstance(node, ast.JoinedStr):  # f"{probe}.timeout", f"input.no-{what}"
                fixed = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if "." in fixed and " " not in fixed:  # a code's shape, not a sentence or a bare "{x}"
                    patterns.append(re.compile("".join(
                        re.escape(v.value) if isinstance(v, ast.Constant) else r"[\w-]+" for v in node.values)))
    unused = [key for key in messages.all_texts()
              if key[0] not in words and not any(p.fullmatch(key[0].replace("*", "probe")) for p in patterns)]
    assert not unused, "texts no finding uses:\n" + "\n".join(map(str, unused))


@pytest.mark.parametrize("lang", [lang for lang in messages.LANGUAGES if lang != "en"])
def test_the_catalog_is_complete_and_its_placeholders_match(lang):
    problems = list(extract.problems(lang))
    assert not problems, "\n".join(problems)


def test_a_finding_is_worded_from_its_code_variant_and_params():
    f = Finding(Status.SKIP, "cuda.no-gpu", "no-device", params={"torch_cuda": "12.8"})
    assert f.title == "No GPU to check: no CUDA device is visible to torch (built with CUDA 12.8)"
    assert f.text("ru").title == "Нет GPU для проверки: torch собран с CUDA 12.8, но не видит ни одного CUDA-устройства"


def test_a_cause_and_a_message_param_are_worded_in_the_reports_language():
    cause = Finding(Status.FAIL, "cuda.no-bf16", params={"device": "T4", "sm": "sm_75"})
    stopped = Finding(Status.SKIP, "step.prerequisite", params={"cause": cause.ref()})
    assert stopped.title == "Not checked: T4 (sm_75) has no bf16 (needs compute capability >= 8.0)"
    assert stopped.text("ru").title.startswith("Не проверено: T4 (sm_75) не поддерживает bf16")
    assert stopped.text("ru").fix == cause.text("ru").fix
    assert messages.word(messages.M("yes"), "ru") == "да"


def test_plurals_follow_the_count_in_russian():
    tr = messages.translations("ru")
    forms = [tr.ngettext("... and %(num)d more row, all in the JSON report",
                         "... and %(num)d more rows, all in the JSON report", n) % {"num": n} for n in (1, 3, 5, 21)]
    assert forms == ["... и ещё 1 строка, все есть в JSON-отчёте", "... и ещё 3 строки, все есть в JSON-отчёте",
                     "... и ещё 5 строк, все есть в JSON-отчёте", "... и ещё 21 строка, все есть в JSON-отчёте"]


def test_a_probe_that_raised_is_worded_in_both_languages():
    from dsocr_probe.findings import probe_error

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        f = probe_error("batch", exc)
    assert f.title == "The batch probe raised RuntimeError: boom" and "test_messages.py" in f.detail
    assert f.text("ru").title == "Проверка batch упала с RuntimeError: boom"
    assert f.text("ru").detail == f.detail  # the traceback is data
