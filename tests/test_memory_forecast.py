"""The weightless memory forecast: sizes, balanced routing, and the direction each setting moves it.

A tiny native Llama (built from its config, no weights) shows the language-model side: batch, length,
gradient checkpointing, the optimizer and gradient accumulation. The demo model (the OCR-2 demo, or the
v1 stand-in where OCR-2 is absent) shows the vision side: a page with crops costs more than one without.
"""

from __future__ import annotations

import pytest
import torch

from dsocr_probe import messages
from dsocr_probe.model import memory_forecast as mf
from dsocr_probe.model.memory_ledger import ledger_mode

LORA = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "task_type": "CAUSAL_LM"}


@pytest.mark.parametrize("text, expected", [("16GiB", 16 * 1024**3), ("16GB", 16 * 10**9), ("24G", 24 * 1024**3),
                                            ("12", 12 * 1024**3), ("12288MiB", 12 * 1024**3), (" 7.5 gib ", int(7.5 * 1024**3))])
def test_sizes_parse(text, expected):
    assert mf.parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "16 GiBs", "-4G", "0", ""])
def test_a_bad_size_names_the_forms(text):
    with pytest.raises(ValueError, match="16GiB"):
        mf.parse_size(text)


@pytest.fixture(scope="module")
def llama():
    import transformers

    config = transformers.LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config)


def _text_batch(batch: int, length: int) -> dict:
    ids = torch.randint(3, 500, (batch, length))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _peak(skeleton, batch=1, length=256, **plan) -> mf.StepForecast:
    p = mf.RunPlan(dtype=torch.float32, **plan)
    return mf.forecast(mf.prepare(skeleton, LORA, p), _text_batch(batch, length), p, length=length)


def test_the_forecast_grows_with_batch_and_length(llama):
    one, two, four = (_peak(llama, batch=b).peak for b in (1, 2, 4))
    assert one < two < four
    assert _peak(llama, length=128).peak < _peak(llama, length=256).peak < _peak(llama, length=512).peak


def test_checkpointing_lowers_the_activations(llama):
    plain, checkpointed = _peak(llama, length=512), _peak(llama, length=512, checkpointing=True)
    assert checkpointed.activations < plain.activations and checkpointed.peak < plain.peak


def test_the_optimizer_state_follows_the_optimizer(llama):
    adam, eight_bit, sgd = (_peak(llama, optim=o) for o in ("adamw_torch", "adamw_bnb_8bit", "sgd"))
    adapters = adam.adapters
    assert adam.optimizer == 2 * adapters  # two float32 states per adapter element
    assert sgd.optimizer == 0 < eight_bit.optimizer < adam.optimizer
    assert eight_bit.optimizer == pytest.approx(adapters / 2, rel=0.01)  # one byte per state per 4-byte element
    assert sgd.peak <= eight_bit.peak <= adam.peak


def test_accumulation_keeps_the_gradients_during_the_next_forward(llama):
    once, accumulated = _peak(llama), _peak(llama, accumulation=4)
    assert accumulated.peak - once.peak == pytest.approx(once.gradients, abs=4096)


def test_the_parts_add_up_to_the_need(llama):
    f = _peak(llama)
    parts = {messages.word(what, "en"): n for what, n in f.parts()}
    assert f.need == f.peak + f.allowance and parts["needed on the card"] == f.need
    frozen = sum(p.numel() * 4 for n, p in mf.prepare(llama, LORA, mf.RunPlan(torch.float32)).named_parameters()
                 if "lora_" not in n)
    assert frozen <= f.weights <= frozen * 1.01  # with the buffers, each rounded to the allocator's 512 bytes
    assert f.logits >= 256 * 512 * 4  # the float32 logits of one sample


def test_mixed_precision_casts_like_autocast(llama):
    """bf16 weights with bf16 autocast hold less than float32 weights with bf16 autocast (which save the
    bf16 copies of the weights for backward on top of the float32 ones)."""
    bf16 = mf.forecast(mf.prepare(llama, LORA, mf.RunPlan(torch.bfloat16)), _text_batch(1, 256),
                       mf.RunPlan(torch.bfloat16, autocast=torch.bfloat16))
    fp32 = _peak(llama, autocast=torch.bfloat16)
    assert bf16.weights * 2 == pytest.approx(fp32.weights, rel=0.01)
    assert bf16.peak < fp32.peak


def test_router_top_k_is_balanced_and_real():
    scores = torch.empty(10, 8, device="meta")
    with ledger_mode() as ledger:
        _, index = torch.topk(scores, k=2, dim=-1)
    assert not index.is_meta and ledger.routed == 1
    assert torch.bincount(index.flatten(), minlength=8).tolist() == [3, 3, 3, 3, 2, 2, 2, 2]


def test_a_value_read_from_the_weights_is_counted():
    w = torch.empty(4, device="meta")
    with ledger_mode() as ledger:
        assert bool((w > 0).any()) is True
    assert ledger.reads["item"] == 1


def test_the_demo_with_crops_costs_more_than_without(demo, tmp_path):
    """The vision side: a page cut into crops has more image slots, and more activations, than one that is not."""
    from PIL import Image

    from dsocr_probe.model import loading
    from dsocr_probe.collators import DeepseekOCRCollator
    from dsocr_probe.inputs.dataset import Row
    from dsocr_probe.demo.target import V1, demo_family
    from probing import context

    ctx = context(trust_remote_code=True)
    builder = loading.builder_for(ctx, None, torch.float32)
    if demo_family() == V1:  # the demo's config trains in tiny mode (no crops); gundam cuts large pages
        builder = DeepseekOCRCollator(ctx.tokenizer(), mode="gundam", dtype=torch.float32)
        small, large = (480, 600), (1400, 1900)  # gundam crops a page larger than 640 px on a side
    else:  # the OCR-2 demo's views are 8x smaller than the real model's
        small, large = (72, 96), (192, 96)
    plan = mf.RunPlan(torch.float32)
    model = mf.prepare(ctx.skeleton().model, ctx.train_config().lora, plan)
    peaks = []
    for size in (small, large):
        path = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.new("RGB", size, "white").save(path)
        batch = builder([Row("train", 0, path, "one line of text").example()])
        f = mf.forecast(model, batch, plan)
        peaks.append((builder.tokens_before_target(*size), f.peak))
        assert f.routed >= 1  # the demo's MoE layer was routed, balanced
    (slots_small, peak_small), (slots_large, peak_large) = peaks
    assert slots_small < slots_large and peak_small < peak_large
