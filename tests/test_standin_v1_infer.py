"""The v1 stand-in's inference path, as the published one: a stripped prompt, generation, results saved."""

from __future__ import annotations

import importlib

import pytest
import torch
from PIL import Image

REMOTE_CODE_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
pytestmark = pytest.mark.skipif(not REMOTE_CODE_LOADS, reason="the v1 remote code imports only on transformers <= 4.47.1")


@pytest.fixture(scope="module")
def loaded(v1_model):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(str(v1_model), trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModel.from_config(config, trust_remote_code=True).eval()
    return model, AutoTokenizer.from_pretrained(str(v1_model)), importlib.import_module(type(model).__module__)


def test_format_messages_strips_every_message_and_the_prompt(loaded):
    _, _, module = loaded
    conversation = [{"role": "<|User|>", "content": "<image>\nFree OCR. "}, {"role": "<|Assistant|>", "content": ""}]
    assert module.format_messages(conversation) == "<image>\nFree OCR."


def test_infer_generates_and_saves_its_results(loaded, tmp_path):
    model, tokenizer, _ = loaded
    page = tmp_path / "page.png"
    Image.new("RGB", (96, 64), "white").save(page)
    out = tmp_path / "out"
    text = model.infer(tokenizer, prompt="<image>\nFree OCR. ", image_file=str(page), output_path=str(out),
                       image_size=128, crop_mode=False, save_results=True, max_new_tokens=3)
    assert isinstance(text, str)
    assert (out / "result.mmd").read_text(encoding="utf-8") == text
    assert (out / "result_with_boxes.jpg").is_file()


def test_boxes_in_generated_text_are_parsed_with_eval(loaded):
    _, _, module = loaded
    refs = module.re_match("<|ref|>title<|/ref|><|det|>[[10, 20, 500, 60]]<|/det|>")
    assert module.extract_coordinates_and_label(refs[0], 100, 100) == ("title", [[10, 20, 500, 60]])
