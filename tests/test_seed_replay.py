"""The seed team's two lost days, replayed: every cause must be named with its fix, no weights loaded.

Their machine (Windows, RTX 5060 Ti sm_120, torch 2.5.1+cu121, transformers 4.45, peft 0.18.0) is
injected through the pytest_dsocr_facts hook; their config, collator and data are recreated.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from pages import write_pages

REPLAY_CONFTEST = '''
from dsocr_probe.inputs.facts import DeviceFacts, EnvFacts


def pytest_dsocr_facts(config, facts):
    return EnvFacts(
        python="3.11.9",
        os="Windows",
        mp_start_method="spawn",
        versions={"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121", "transformers": "4.45.0",
                  "tokenizers": "0.20.3", "peft": "0.18.0", "accelerate": "1.2.1"},
        torch_cuda="12.1",
        cuda_available=True,
        arch_list=["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"],
        devices=[DeviceFacts(0, "NVIDIA GeForce RTX 5060 Ti", (12, 0), 16 * 2**30)],
    )
'''

# The team's collator: a function defined inside a method, emitting pixel_values.
TEAM_COLLATOR = '''
import torch


def create_trainer():
    def data_collator(examples):
        n = len(examples)
        ids = torch.ones(n, 8, dtype=torch.long)
        return {"pixel_values": torch.zeros(n, 3, 64, 64), "input_ids": ids, "attention_mask": ids, "labels": ids.clone()}
    return data_collator


data_collator = create_trainer()
'''

TEAM_CONFIG = """
model:
  name: deepseek-ai/DeepSeek-OCR
  auto_class: AutoModelForVision2Seq
  trust_remote_code: true
lora:
  r: 8
  lora_alpha: 16
  lora_dropout: 0.05
  target_modules: [q_proj, v_proj]
  task_type: SEQ_2_SEQ_LM
training:
  output_dir: outputs/lora
  per_device_train_batch_size: 4
  gradient_accumulation_steps: 4
  num_train_epochs: 50
  learning_rate: 2e-4
  optimizer: adamw_torch
  dataloader_num_workers: 2
data:
  train_dir: data/processed/train
  val_dir: data/processed/val
  collator: "utils.collate:data_collator"
"""

# Each seed failure: the finding code that must name it, and words its fix must contain.
EXPECTED = {
    "environment.peft-needs-modeling-layers": "peft==0.17.1",
    "cuda.no-kernels": "cu128",
    "train_config.auto-class": "AutoModel",
    "train_config.renamed-argument": "optim",
    "train_config.number-as-string": "learning_rate: 2.0e-4",
    "train_config.batch-larger-than-data": "per_device_train_batch_size",
    "train_config.effective-batch": "gradient_accumulation_steps",
    "train_config.epochs": "epochs",
    "train_config.collator-pickle": "dataloader_num_workers: 0",
    "train_config.task-type": "CAUSAL_LM",
    "batch.unknown-key": "images",
    "processor.tokenizer-only": "DeepseekOCRCollator",
}


@pytest.fixture()
def team_project(pytester):
    root = pytester.path
    write_pages(root / "data" / "processed" / "train", ["Привет мир", "рукописный текст", "третья строка"])
    write_pages(root / "data" / "processed" / "val", ["проверка"])
    pytester.makeconftest(REPLAY_CONFTEST)
    (root / "utils").mkdir()
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "collate.py").write_text(TEAM_COLLATOR)
    (root / "configs").mkdir()
    (root / "configs" / "training_config.yaml").write_text(textwrap.dedent(TEAM_CONFIG))
    return root


def test_seed_replay_names_every_cause_with_its_fix(pytester, team_project, v1_model):
    result = pytester.runpytest(
        "--dsocr-probe", "--dsocr-model", str(v1_model),
        "--dsocr-train-config", "configs/training_config.yaml",
        "--dsocr-report-dir", "reports", "-k", "not step",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*verdict: NO-GO*", "*report: *REPORT_DeepSeek-OCR_*.md"])
    report = json.loads(next((team_project / "reports").glob("*.json")).read_text(encoding="utf-8"))
    assert report["verdict"] == "NO-GO"
    assert report["environment"]["injected"] is True
    findings = {f["code"]: f for p in report["probes"] for f in p["findings"]}
    missing = [code for code in EXPECTED if code not in findings]
    assert not missing, f"causes not named: {missing}"
    for code, word in EXPECTED.items():
        f = findings[code]
        assert f["status"] in ("fail", "warn"), (code, f["status"])
        assert word in f["fix"], (code, f["fix"])
    assert findings["batch.unknown-key"]["params"]["key"] == "pixel_values"
    assert "Unrecognized configuration class" in findings["train_config.auto-class"]["title"]
    assert "Can't pickle local object" in findings["train_config.collator-pickle"]["title"]
    markdown = next((team_project / "reports").glob("*.md")).read_text(encoding="utf-8")
    assert markdown.startswith("# ")
    assert "NO-GO" in markdown.splitlines()[2]
    for code in EXPECTED:
        assert findings[code]["title"] in markdown


def test_seed_replay_in_russian_names_every_cause_in_russian(pytester, team_project, v1_model):
    """The same run with --dsocr-lang ru: every finding is shown in Russian, worded from its code, variant
    and params (the JSON twin's), and its English title is not in the report."""
    from dsocr_probe.findings import Finding, Status

    result = pytester.runpytest(
        "--dsocr-probe", "--dsocr-model", str(v1_model),
        "--dsocr-train-config", "configs/training_config.yaml",
        "--dsocr-report-dir", "reports", "--dsocr-lang", "ru",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads(next((team_project / "reports").glob("*.json")).read_text(encoding="utf-8"))
    markdown = next((team_project / "reports").glob("*.md")).read_text(encoding="utf-8")
    assert "Вердикт" in markdown.splitlines()[2] and "NO-GO" in markdown.splitlines()[2]
    translated = set()
    for data in (f for p in report["probes"] for f in p["findings"]):
        worded = Finding(Status(data["status"]), data["code"], data["variant"], params=data["params"]).text("ru")
        for key in ("title", "detail", "fix"):
            assert getattr(worded, key) in markdown, (data["code"], key, getattr(worded, key))
        if worded.title != data["title"]:
            assert data["title"] not in markdown, data["code"]  # shown in Russian only
            translated.add(data["code"])
    missing = [code for code in EXPECTED if code not in translated]
    assert not missing, f"seed causes not in Russian: {missing}"
    # The skips of an untrusted run are in Russian too, the one that stopped another one included.
    assert {"loading.untrusted", "train_config.lora-targets"} <= translated
    assert "LoRA target_modules не сверены: Remote code не импортируется без --dsocr-trust-remote-code" in markdown
