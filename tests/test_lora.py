"""LoRA helpers: task type, default targets, peft's own matching, and where adapters cannot learn."""

from __future__ import annotations

import pytest
import torch
import transformers

from dsocr_probe.model import lora

# Module names as the published DeepSeek-OCR v1 checkpoint has them (reference: linear module names).
V1_NAMES = [
    "model.embed_tokens",
    "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
    "model.layers.0.mlp.down_proj", "model.layers.1.mlp.experts.0.gate_proj", "model.layers.1.mlp.gate",
    "model.sam_model.blocks.0.attn.qkv", "model.sam_model.blocks.0.attn.proj", "model.sam_model.blocks.0.mlp.lin1",
    "model.sam_model.blocks.0.mlp.lin2", "model.vision_model.transformer.layers.0.self_attn.qkv_proj",
    "model.vision_model.transformer.layers.0.self_attn.out_proj", "model.vision_model.transformer.layers.0.mlp.fc1",
    "model.vision_model.transformer.layers.0.mlp.fc2", "model.projector.layers", "lm_head",
]
V1_VISION = [n for n in V1_NAMES if ".sam_model." in n or ".vision_model." in n or ".projector." in n]


def tiny_llama():
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


@pytest.mark.parametrize(
    "config, want",
    [
        ({"model_type": "DeepseekOCR", "architectures": ["DeepseekOCRForCausalLM"]}, "CAUSAL_LM"),
        ({"model_type": "deepseek_ocr2"}, "CAUSAL_LM"),
        ({"model_type": "t5", "is_encoder_decoder": True}, "SEQ_2_SEQ_LM"),
        (transformers.T5Config(), "SEQ_2_SEQ_LM"),
        (transformers.LlamaConfig(), "CAUSAL_LM"),
    ],
)
def test_task_type_follows_the_architecture(config, want):
    assert lora.task_type_for(config) == want


@pytest.mark.parametrize("given", ["CAUSAL_LM", "causal_lm", "TaskType.CAUSAL_LM", " CAUSAL_LM "])
def test_task_type_spellings(given):
    from peft import TaskType

    assert lora.normalise_task_type(given) == "CAUSAL_LM"
    assert lora.normalise_task_type(TaskType.CAUSAL_LM) == "CAUSAL_LM"
    assert lora.normalise_task_type(None) is None


def test_v1_defaults_are_the_language_model_projections():
    targets = lora.language_model_targets(V1_NAMES)
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    # No vision module shares those names in v1, so the short names need no exclusion.
    assert lora.vision_exclude_pattern(V1_NAMES) is None
    matched = lora.match_targets(V1_NAMES, targets)
    assert matched and not set(matched) & set(V1_VISION)
    assert "model.layers.1.mlp.experts.0.gate_proj" in matched


def test_v1_vision_path_never_gets_gradients():
    assert lora.no_grad_modules("DeepseekOCR", V1_NAMES) == V1_VISION
    assert lora.no_grad_modules({"model_type": "DeepseekOCR"}, ["model.layers.0.self_attn.q_proj"]) == []
    # After peft wraps the model the names gain a prefix; the facts still apply.
    assert lora.no_grad_modules("DeepseekOCR", ["base_model.model.model.sam_model.blocks.0.attn.qkv"])
    assert lora.vision_modules(V1_NAMES) == V1_VISION


def test_ocr2_vision_takes_gradients_so_nothing_is_flagged():
    assert lora.no_grad_modules("deepseek_ocr2", ["model.vision_tower.vision_encoder.layers.0.self_attn.q_proj"]) == []


@pytest.mark.skipif(not hasattr(transformers, "DeepseekOcr2ForConditionalGeneration"),
                    reason="native DeepSeek-OCR-2 needs transformers >= 5.10.1")
def test_ocr2_defaults_exclude_its_vision_encoder():
    """DeepSeek-OCR-2's vision encoder has q_proj ... down_proj too: short names alone would adapt it."""
    from dsocr_probe.demo.target import demo_target

    config = transformers.AutoConfig.from_pretrained(str(demo_target().path))
    with torch.device("meta"):
        model = transformers.DeepseekOcr2ForConditionalGeneration(config)
    names = [n for n, _ in model.named_modules()]

    settings = lora.default_settings(names)
    assert settings["target_modules"] == list(lora.LM_PROJECTIONS)
    assert "vision_tower" in settings["exclude_modules"]
    with_exclusion = lora.match_targets(names, settings["target_modules"], settings["exclude_modules"])
    without = lora.match_targets(names, settings["target_modules"])
    assert with_exclusion and all(".language_model." in n for n in with_exclusion)
    assert any(".vision_tower." in n for n in without)


def test_matching_is_what_peft_wraps():
    model = tiny_llama()
    names = [n for n, _ in model.named_modules()]
    for targets in (["q_proj", "v_proj"], r".*\.layers\.1\..*(up|down)_proj", ["model.layers.0.mlp.gate_proj"]):
        expected = set(lora.match_targets(names, targets))
        wrapped = lora.wrap(tiny_llama(), {"target_modules": targets})
        got = {n.removeprefix("base_model.model.") for n in lora.adapter_modules(wrapped)}
        assert got == expected and expected, targets


def test_wrap_fills_in_task_type_and_targets():
    wrapped = lora.wrap(tiny_llama())
    settings = wrapped.peft_config[wrapped.active_adapter]
    assert lora.normalise_task_type(settings.task_type) == "CAUSAL_LM"
    assert set(settings.target_modules) == set(lora.LM_PROJECTIONS)
    assert type(wrapped).__name__ == "PeftModelForCausalLM"
    assert len(lora.adapter_modules(wrapped)) == 2 * 7


def test_wrap_keeps_a_wrong_task_type_as_written():
    """The probes report a wrong task type; the helper must not quietly correct it."""
    wrapped = lora.wrap(tiny_llama(), {"task_type": "SEQ_2_SEQ_LM", "target_modules": ["q_proj"]})
    assert type(wrapped).__name__ == "PeftModelForSeq2SeqLM"


def test_unknown_task_type_is_named():
    with pytest.raises(ValueError, match="CAUSAL_LM_MODEL.*CAUSAL_LM"):
        lora.lora_config({"task_type": "CAUSAL_LM_MODEL", "target_modules": ["q_proj"]})


def test_defaults_need_names():
    with pytest.raises(ValueError, match="target_modules is not set"):
        lora.lora_config({})
