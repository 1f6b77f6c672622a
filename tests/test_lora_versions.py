"""LoRA settings against the installed peft: fields it lacks, module types it cannot adapt."""

from __future__ import annotations

import pytest
import torch
import yaml
from packaging.version import Version

from dsocr_probe.model import lora
from dsocr_probe.messages import word
from probing import context, linux_cpu, probe

PEFT = Version(__import__("peft").__version__)
HAS_EXCLUDE = PEFT >= Version("0.14.0")

# A VLM whose vision encoder uses the language model's projection names (LLaVA-like).
SHARED_NAMES = [
    "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.0.mlp.down_proj",
    "model.vision_tower.encoder.layers.0.self_attn.q_proj", "model.vision_tower.encoder.layers.0.self_attn.v_proj",
    "model.multi_modal_projector.linear_1",
]


def test_config_fields_are_the_installed_signature():
    from peft import LoraConfig

    fields = lora.config_fields()
    assert {"r", "lora_alpha", "target_modules", "task_type"} <= fields
    assert ("exclude_modules" in fields) == HAS_EXCLUDE
    assert lora.unsupported_fields(["r", "no_such_field"]) == [("no_such_field", None)]
    for key in fields:
        assert key in LoraConfig.__dataclass_fields__


def test_a_field_the_installed_peft_lacks_is_named_with_the_release_that_has_it(monkeypatch):
    monkeypatch.setattr(lora, "config_fields", lambda: frozenset({"r", "lora_alpha", "lora_dropout", "target_modules", "task_type"}))
    assert lora.unsupported_fields(["r", "exclude_modules", "target_parameters"]) == [
        ("exclude_modules", "0.14.0"), ("target_parameters", "0.17.0")]
    with pytest.raises(ValueError, match=r"lora.exclude_modules .* needs peft >= 0.14.0"):
        lora.lora_config({"target_modules": ["q_proj"], "exclude_modules": "x"})


@pytest.mark.skipif(HAS_EXCLUDE, reason="exclude_modules exists from peft 0.14.0")
def test_old_peft_rejects_exclude_modules_with_our_message():
    with pytest.raises(ValueError, match=r"needs peft >= 0.14.0"):
        lora.lora_config({"target_modules": ["q_proj"], "exclude_modules": "x"})
    # matching still works: peft would refuse the config before matching anything
    assert lora.match_targets(SHARED_NAMES, ["q_proj"], "x") == [n for n in SHARED_NAMES if n.endswith("q_proj")]


def _without_exclude(monkeypatch):
    real = lora.config_fields()
    monkeypatch.setattr(lora, "config_fields", lambda: real - {"exclude_modules"})


def test_defaults_without_exclude_modules_keep_off_the_vision_side(monkeypatch):
    if HAS_EXCLUDE:
        _without_exclude(monkeypatch)  # as on peft 0.13.x
    settings = lora.default_settings(SHARED_NAMES)
    assert "exclude_modules" not in settings and isinstance(settings["target_modules"], str)
    assert lora.match_targets(SHARED_NAMES, settings["target_modules"]) == SHARED_NAMES[:3]
    text = lora.settings_text(settings)
    assert "exclude_modules" not in text and text.startswith("`target_modules: '")
    config = lora.lora_config({}, SHARED_NAMES)  # builds on the installed peft
    assert getattr(config, "exclude_modules", None) is None


@pytest.mark.skipif(not HAS_EXCLUDE, reason="exclude_modules exists from peft 0.14.0")
def test_defaults_with_exclude_modules_use_it():
    settings = lora.default_settings(SHARED_NAMES)
    assert settings["target_modules"] == ["q_proj", "v_proj", "down_proj"]
    assert lora.match_targets(SHARED_NAMES, settings["target_modules"], settings["exclude_modules"]) == SHARED_NAMES[:3]
    assert "exclude_modules: '" in word(lora.settings_text(settings), "en")


def test_the_regex_defaults_wrap_what_they_match(monkeypatch):
    """The regex form is what peft itself adapts, on a real model."""
    _without_exclude(monkeypatch)

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(4, 4)

    class Vlm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_tower = Tower()
            self.layers = torch.nn.ModuleList([Tower(), Tower()])

    names = [n for n, _ in Vlm().named_modules()]
    settings = lora.default_settings(names)
    from peft import LoraConfig, inject_adapter_in_model

    wrapped = inject_adapter_in_model(LoraConfig(target_modules=settings["target_modules"]), Vlm())
    assert lora.adapter_modules(wrapped) == ["layers.0.q_proj", "layers.1.q_proj"]


def test_unadaptable_module_types_are_peft_s_own_answer():
    class Gate(torch.nn.Module):  # a router with a raw weight, like the MoE gate
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(4, 8))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = Gate()
            self.gate_proj = torch.nn.Linear(8, 8)
            self.embed = torch.nn.Embedding(10, 8)

    with torch.device("meta"):
        model = torch.nn.ModuleDict({"a": Block(), "b": Block()})
    refused = lora.unadaptable_types(model, ["a.gate", "b.gate", "a.gate_proj", "a.embed"])
    assert list(refused) == ["Gate"]
    names, error = refused["Gate"]
    assert names == ["a.gate", "b.gate"] and "not supported" in error
    assert model["a"].gate_proj.weight.requires_grad  # the model itself was not touched
    assert not hasattr(model["a"], "peft_config") and type(model["a"].gate_proj) is torch.nn.Linear


def _v1_config(tmp_path, lora_section: dict):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"lora": lora_section, "training": {"remove_unused_columns": False}}))
    return cfg


def _v1_lora(tmp_path, v1_model, lora_section):
    import transformers

    if Version(transformers.__version__) > Version("4.47.1"):
        pytest.skip("the v1 remote code imports only on transformers <= 4.47.1")
    ctx = context(linux_cpu(transformers=transformers.__version__), model=str(v1_model),
                  train_config=_v1_config(tmp_path, lora_section), trust_remote_code=True, allow_unpinned=True)
    return {f.code: f for f in probe("train_config", ctx).findings}


def test_the_moe_router_as_a_target_is_no_go(tmp_path, v1_model):
    found = _v1_lora(tmp_path, v1_model, {"r": 4, "target_modules": ["q_proj", "gate"], "task_type": "CAUSAL_LM"})
    f = found["train_config.lora-module-type"]
    assert f.status.value == "fail" and "MoEGate" in f.title and "q_proj" in f.fix
    assert "train_config.lora-targets" not in found
    ok = _v1_lora(tmp_path, v1_model, {"r": 4, "target_modules": ["q_proj", "gate_proj"], "task_type": "CAUSAL_LM"})
    assert "train_config.lora-module-type" not in ok and ok["train_config.lora-targets"].status.value == "pass"


def test_exclude_modules_in_the_config_is_judged_by_the_installed_peft(tmp_path, v1_model):
    found = _v1_lora(tmp_path, v1_model, {"r": 4, "target_modules": ["q_proj"], "exclude_modules": "model\\.sam_model\\..*",
                                          "task_type": "CAUSAL_LM"})
    if HAS_EXCLUDE:
        assert "train_config.lora-field-unsupported" not in found
    else:
        f = found["train_config.lora-field-unsupported"]
        assert f.status.value == "fail" and "exclude_modules" in f.title and "0.14.0" in f.title
    assert found["train_config.lora-targets"].status.value == "pass"
    for f in found.values():  # no fix of ours recommends setting a field this peft lacks
        assert HAS_EXCLUDE or "exclude_modules: '" not in (f.fix or "")


def test_the_step_probe_s_targets_fix_follows_the_installed_peft(monkeypatch):
    from dsocr_probe.messages import word
    from dsocr_probe.probes import step_learning

    if HAS_EXCLUDE:
        fix = word(step_learning.targets_fix(SHARED_NAMES), "en")
        assert "exclude_modules: '" in fix and step_learning.targets_params(SHARED_NAMES)["exclude"]
        _without_exclude(monkeypatch)
    fix = word(step_learning.targets_fix(SHARED_NAMES), "en")
    assert "exclude_modules" not in fix and "`target_modules: '(?!" in fix
    params = step_learning.targets_params(SHARED_NAMES)
    assert params["exclude"] is None and params["targets"].startswith("'(?!")
