"""Russian reports are Russian throughout: the demo, the seed team's replay and a run on a broken dataset,
rendered with --dsocr-lang ru, hold no English sentence outside code, quotes and data; nor does the
terminal summary."""

from __future__ import annotations

import json
import re

import pytest
from pages import write_pages
from test_seed_replay import team_project  # noqa: F401  (the seed team's project, a fixture)

# What is not prose: code spans, quoted text and an exception with its message (as the library prints them),
# links and paths.
NOT_PROSE = [
    re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b: .*"),
    re.compile(r"`[^`\n]*`"),
    re.compile(r"(?<![\w])'[^'\n]*'(?![\w])"),
    re.compile(r'"[^"\n]*"'),
    re.compile(r"https?://\S+"),
    re.compile(r"(?:[\w.-]*/)+[\w.-]+"),
]
WORD = re.compile(r"^\(?[A-Za-z][a-z'-]*[,.;:)!?]*$")  # an English word; not CamelCase, CAPS or identifiers
RUN = 3  # this many English words in a row are a sentence left untranslated


def english_sentences(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        for pattern in NOT_PROSE:
            line = pattern.sub(" ", line)
        for cell in line.split("|"):  # a run of words never crosses a table cell
            run: list[str] = []
            for token in cell.split() + [""]:
                if WORD.match(token):
                    run.append(token)
                    continue
                if len(run) >= RUN:
                    found.append(" ".join(run))
                run = []
    return found


def test_the_detector_finds_english_and_leaves_russian_code_and_quotes():
    assert english_sentences("The run can start; read the warnings first") != []
    assert english_sentences("Проверьте `pip install 'peft==0.17.1'` и 'No module named transformers.x'") == []
    assert english_sentences("| torch | 2.13.0+cpu | не установлен | DeepseekOCRForCausalLM |") == []
    assert english_sentences("processor(...) → TypeError: f() got an unexpected keyword argument 'images'") == []


def _russian_run(pytester, *args):
    # In a process of its own: an in-process run would leave modules imported anew beside the ones other
    # tests hold (pytester restores sys.modules after each run).
    result = pytester.runpytest_subprocess("--dsocr-probe", "--dsocr-lang", "ru", "--dsocr-report-dir", "reports", *args)
    (md,) = (pytester.path / "reports").glob("*.md")
    return result, md.read_text(encoding="utf-8")


def _assert_russian(result, markdown):
    english = english_sentences(markdown)
    assert not english, "English in the Russian report:\n" + "\n".join(english)
    summary = result.stdout.str().split("= dsocr-probe =", 1)[1]
    summary = "\n".join(line for line in summary.splitlines() if not line.startswith(("=", "SKIPPED", "FAILED")))
    assert "вердикт:" in summary
    english = english_sentences(summary)
    assert not english, "English in the Russian terminal summary:\n" + "\n".join(english)


def test_the_demo_report_in_russian(pytester):
    result, markdown = _russian_run(pytester)
    assert result.ret == 0
    _assert_russian(result, markdown)


def test_the_seed_replay_in_russian(pytester, team_project, v1_model):
    result, markdown = _russian_run(pytester, "--dsocr-model", str(v1_model),
                                    "--dsocr-train-config", "configs/training_config.yaml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _assert_russian(result, markdown)


def test_a_broken_dataset_in_russian(pytester):
    data = pytester.path / "data"
    write_pages(data / "train", ["первая страница", "", "вторая страница", "вторая страница"])
    write_pages(data / "val", ["первая страница"])
    rows = json.loads((data / "train" / "metadata.json").read_text(encoding="utf-8"))
    rows.append({"image_path": "images/missing.png", "text": "нет файла"})
    rows.append({"image_path": "images/00001.png"})
    (data / "train" / "images" / "00003.png").write_bytes(b"not a png")
    (data / "train" / "metadata.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    result, markdown = _russian_run(pytester, "--dsocr-data", str(data))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _assert_russian(result, markdown)
