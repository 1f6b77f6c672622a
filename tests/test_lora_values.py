"""The LoRA section is judged the way peft reads it: on the weightless model, before any weights load."""

from __future__ import annotations

import pytest
import yaml
from packaging.version import Version
from probing import codes, context, probe

from dsocr_probe.model import loading
from dsocr_probe.findings import Status


def lora_version() -> Version:
    import peft

    return Version(peft.__version__)


@pytest.fixture(scope="module")
def demo():
    from dsocr_probe.demo.target import demo_target

    return demo_target()


@pytest.fixture(autouse=True)
def no_weights(monkeypatch):
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: pytest.fail("weights were loaded"))


def run(demo, tmp_path, drop=(), **lora):
    config = yaml.safe_load((demo.path / "training_config.yaml").read_text(encoding="utf-8"))
    config["lora"].update(lora)
    for key in drop:
        config["lora"].pop(key, None)
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return probe("train_config", context(trust_remote_code=True, train_config=path, device="cpu"))


def test_a_rank_of_zero_names_the_rank_not_the_targets(demo, tmp_path):
    result = run(demo, tmp_path, r=0)

    finding = next(f for f in result.findings if f.code == "train_config.out-of-range")
    assert finding.params["key"] == "lora.r" and "≥ 1" in finding.title
    assert "train_config.lora-targets-missing" not in codes(result)


def test_all_linear_is_peft_s_own_keyword_not_a_missing_module(demo, tmp_path):
    result = run(demo, tmp_path, drop=["exclude_modules"], target_modules="all-linear")

    assert "train_config.lora-targets-missing" not in codes(result)
    refused = [f for f in result.findings if f.code in ("train_config.lora-refused", "train_config.lora-module-type")]
    if refused:  # peft 0.13 resolves all-linear to suffixes, and v1's `layers` suffix is also a ModuleList
        assert "ModuleList" in refused[0].title and lora_version() < Version("0.14")
        return
    matched = next(f for f in result.findings if f.code.startswith("train_config.lora-"))
    assert matched.status is not Status.FAIL, matched.title
    assert matched.evidence["matched modules"] > 4  # every linear layer but the output head


def test_a_regex_string_is_matched_by_peft_and_shown_whole(demo, tmp_path):
    pattern = r".*language_model.*\.(q_proj|v_proj)"
    result = run(demo, tmp_path, drop=["exclude_modules"], target_modules=pattern)

    finding = next(f for f in result.findings if f.code.startswith("train_config.lora-"))
    assert f"`{pattern}`" in finding.title
    if finding.code == "train_config.lora-targets":
        assert finding.evidence["matched modules"] > 0
