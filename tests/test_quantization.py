"""A bitsandbytes 4/8-bit config that would quantize the vision side, judged by transformers' own skip rule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from packaging.version import Version

from dsocr_probe.model import quantization
from dsocr_probe.probes.train_config import quantized_loading
from probing import context, linux_cpu, probe

V1_LINEAR = [
    "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.gate_proj", "model.sam_model.blocks.0.attn.qkv",
    "model.sam_model.blocks.0.mlp.lin1", "model.vision_model.transformer.layers.0.self_attn.qkv_proj",
    "model.projector.layers", "lm_head",
]
VISION = V1_LINEAR[2:6]


def test_settings_read_both_spellings():
    assert quantization.settings({}) is None
    assert quantization.settings({"quantization_config": {"load_in_4bit": False}}) is None
    assert quantization.settings({"load_in_8bit": True}) == (8, [])
    assert quantization.settings({"quantization_config": {"load_in_4bit": True, "llm_int8_skip_modules": "lm_head"}}) == (4, ["lm_head"])


def test_unskipped_vision_layers_are_named_and_the_fix_really_skips_them():
    assert quantization.quantized_vision(V1_LINEAR, ["lm_head"]) == VISION
    ctx = context(linux_cpu(bitsandbytes="0.45.0"))
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(linear_names=V1_LINEAR), None)
    [f] = quantized_loading(ctx, {"quantization_config": {"load_in_4bit": True}})
    assert f.code == "train_config.quantized-vision" and f.status.value == "warn"
    assert "4-bit" in f.title and "4 linear layers" in f.title
    keep = f.fix.split("llm_int8_skip_modules: [")[1].split("]")[0].split(", ")
    assert keep == ["model.sam_model", "model.vision_model", "model.projector", "lm_head"]
    assert quantization.quantized_vision(V1_LINEAR, keep) == []  # by the installed transformers' rule
    assert list(quantized_loading(ctx, {"quantization_config": {"load_in_4bit": True, "llm_int8_skip_modules": keep}})) == []
    assert list(quantized_loading(ctx, {})) == []


def test_a_skip_entry_the_installed_rule_does_not_honour_still_quantizes():
    import transformers

    # a bare part name: transformers 4.x skips every module under it, 5.x only a prefix or a suffix
    left = quantization.quantized_vision(V1_LINEAR, ["sam_model", "vision_model", "projector"])
    if Version(transformers.__version__) >= Version("5.0.0"):
        assert left == VISION  # a part name in the middle is neither a prefix from the start nor a suffix
    else:
        assert left == []


def test_quantization_without_bitsandbytes_is_no_go():
    ctx = context(linux_cpu())
    ctx.__dict__["_cache_skeleton"] = (SimpleNamespace(linear_names=V1_LINEAR), None)
    found = {f.code: f for f in quantized_loading(ctx, {"load_in_8bit": True, "llm_int8_skip_modules": VISION})}
    assert found["train_config.quantization-no-bitsandbytes"].status.value == "fail"


def test_the_training_config_probe_checks_the_v1_stand_in(tmp_path, v1_model):
    import transformers

    if Version(transformers.__version__) > Version("4.47.1"):
        pytest.skip("the v1 remote code imports only on transformers <= 4.47.1")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"quantization_config": {"load_in_4bit": True}},
                                   "training": {"remove_unused_columns": False}}))
    ctx = context(linux_cpu(transformers=transformers.__version__, bitsandbytes="0.45.0"), model=str(v1_model),
                  train_config=cfg, trust_remote_code=True, allow_unpinned=True)
    f = next(f for f in probe("train_config", ctx).findings if f.code == "train_config.quantized-vision")
    assert "model.sam_model" in f.fix and "model.vision_model" in f.fix
