"""DeepseekOCR2Collator on a tiny random-weight DeepSeek-OCR-2 built offline.

The builder must hand the model exactly what DeepseekOcr2Processor makes (ids, pixels, tile
counts) and add only labels (and the pixel dtype): target + eos supervised, -100 on bos, prompt,
image slots and padding. The slot count must match the features the model's vision path makes.
"""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import transformers
from PIL import Image

from dsocr_probe.collators import DeepseekOCR2Collator, ProcessorCollator
from dsocr_probe.collators.base import IGNORE_INDEX, BadExample, open_rgb

pytestmark = pytest.mark.skipif(
    not hasattr(transformers, "DeepseekOcr2Processor"),
    reason=f"transformers {transformers.__version__} has no native DeepSeek-OCR-2 (needs >= 5.10.1)",
)

PROMPT = "<image>\nFree OCR. "


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from dsocr_probe.demo_ocr2 import write_tiny_ocr2
    from dsocr_probe.demo_pages import write_dataset

    root = tmp_path_factory.mktemp("ocr2")
    write_tiny_ocr2(root)
    write_dataset(root / "dataset")
    return root


@pytest.fixture(scope="module")
def processor(folder):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def examples(folder):
    from dsocr_probe.dataset import load

    return load(folder / "dataset").examples("train")


@pytest.fixture(scope="module")
def builder(processor):
    return DeepseekOCR2Collator(processor, max_length=1024)


@pytest.fixture(scope="module")
def model(folder):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(str(folder)).train()


def _reference(processor, examples):
    """What the processor alone makes of the prompts and pages."""
    images = [open_rgb(e["image"], i) for i, e in enumerate(examples)]
    return processor(images=images, text=[PROMPT] * len(examples), padding=True, return_tensors="pt")


def test_outputs_are_the_processors_plus_target_and_labels(builder, processor, examples):
    tok = processor.tokenizer
    mixed = examples[2:5]  # pages cut into 4 and 3 tiles, and one smaller than a tile
    batch = builder(mixed)
    ref = _reference(processor, mixed)
    assert set(batch) == set(ref) | {"labels"}
    for key in ("pixel_values", "pixel_values_local", "num_local_patches"):
        assert torch.equal(batch[key], ref[key]), key
    assert batch["num_local_patches"].tolist() == [4, 3, 0]
    for i, example in enumerate(mixed):
        prompt = ref["input_ids"][i][ref["attention_mask"][i].bool()].tolist()
        target = tok(example["text"], add_special_tokens=False)["input_ids"]
        real = batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist()
        assert real == prompt + target + [tok.eos_token_id]
    assert batch["attention_mask"].shape == batch["input_ids"].shape == batch["labels"].shape


def test_labels_supervise_exactly_target_and_eos(builder, processor, examples):
    tok = processor.tokenizer
    batch = builder(examples)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    slots = ids == processor.image_token_id
    assert (labels[mask == 0] == IGNORE_INDEX).all()
    assert (labels[slots] == IGNORE_INDEX).all()
    for i, example in enumerate(examples):
        real = ids[i][mask[i].bool()]
        assert real[0] == tok.bos_token_id and labels[i, 0] == IGNORE_INDEX
        supervised = labels[i][labels[i] != IGNORE_INDEX]
        # the supervised tokens are the tail of the sequence: the target and eos, nothing of the prompt
        assert torch.equal(supervised, real[-len(supervised):])
        assert supervised[-1] == tok.eos_token_id
        assert tok.decode(supervised) == example["text"] + tok.eos_token
        prompt_part = tok.decode(real[: len(real) - len(supervised)])
        assert prompt_part.endswith("Free OCR. ") and "Free OCR" not in tok.decode(supervised)


def test_slot_counts_follow_the_processor_rule(builder, examples):
    batch = builder(examples)
    proc = builder.processor
    per_view = lambda size: math.ceil(size / proc.patch_size / proc.downsample_ratio) ** 2  # noqa: E731
    for i, tiles in enumerate(batch["num_local_patches"].tolist()):
        want = per_view(128) + per_view(96) * tiles + 1
        assert builder.expected_slots(tiles) == want
        assert int((batch["input_ids"][i] == proc.image_token_id).sum()) == want
    assert builder.validate(batch) == []


def test_slots_equal_the_models_visual_features(builder, model, examples):
    batch = builder(examples[:3])
    with torch.no_grad():
        feats = model.get_image_features(
            pixel_values=batch["pixel_values"],
            pixel_values_local=batch.get("pixel_values_local"),
            num_local_patches=batch["num_local_patches"],
        ).pooler_output
    slots = (batch["input_ids"] == builder.image_token_id).sum(dim=-1).tolist()
    assert [f.shape[0] for f in feats] == slots


def test_forward_backward_gives_finite_loss(builder, model, examples):
    batch = builder(examples[:2])
    model.zero_grad()
    out = model(**batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_generic_builder_makes_the_same_slots_and_pixels(builder, processor, examples):
    """The generic builder on this processor (one text, prompt found by processing it alone)."""
    ours, generic = builder(examples[:3]), ProcessorCollator(processor, prompt=PROMPT)(examples[:3])
    assert set(ours) == set(generic)
    for key in ("pixel_values", "pixel_values_local", "num_local_patches"):
        assert torch.equal(ours[key], generic[key]), key
    assert builder.validate(generic) == []
    tok = processor.tokenizer
    for i, example in enumerate(examples[:3]):
        sup = generic["labels"][i][generic["labels"][i] != IGNORE_INDEX]
        # joint tokenisation may glue the prompt's trailing space to the target's first word
        assert tok.decode(sup).strip() == example["text"] + tok.eos_token


def test_accepts_image_path_key_and_pil_images(builder, examples):
    first = examples[0]
    by_path = builder([first])
    by_key = builder([{"image_path": str(first["image"]), "text": first["text"]}])
    with Image.open(first["image"]) as im:
        by_pil = builder([{"image": im.copy(), "text": first["text"]}])
    for key in by_path:
        assert torch.equal(by_path[key], by_key[key]) and torch.equal(by_path[key], by_pil[key]), key


def test_prompt_per_example_and_default(processor, examples):
    assert DeepseekOCR2Collator(processor).prompt == PROMPT
    other = "<image>\n<|grounding|>Convert the document to markdown. "
    batch = DeepseekOCR2Collator(processor)([dict(examples[0], prompt=other)])
    tok = processor.tokenizer
    sup = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    assert tok.decode(sup) == examples[0]["text"] + tok.eos_token
    assert "Convert the document" in tok.decode(batch["input_ids"][0])


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"image": "missing.png", "text": "x"}, "cannot decode image"),
        ({"text": "x"}, "no 'image'"),
        ({"image": "IMG", "text": ""}, "'text' is empty"),
        ({"image": "IMG", "text": None}, "'text' must be a string"),
        ({"image": "IMG", "text": "a <image> b"}, "contains the image token"),
        ({"image": "IMG", "text": "x", "prompt": "Free OCR. "}, "exactly once"),
        ({"image": 42, "text": "x"}, "must be a path or a PIL image"),
    ],
)
def test_bad_rows_name_index_path_and_reason(builder, examples, row, reason):
    row = {k: (str(examples[0]["image"]) if v == "IMG" else v) for k, v in row.items()}
    with pytest.raises(BadExample) as err:
        builder([examples[0], row])
    assert err.value.index == 1
    assert reason in str(err.value)
    if isinstance(row.get("image"), str):
        assert err.value.path == row["image"] and row["image"] in str(err.value)


def test_corrupt_image_is_named(builder, examples, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(BadExample, match="cannot decode image") as err:
        builder([examples[0], examples[1], {"image": str(broken), "text": "x"}])
    assert err.value.index == 2 and err.value.path == str(broken)


def test_too_long_example_is_refused_not_cut(processor, examples):
    batch = DeepseekOCR2Collator(processor)(examples)
    longest = int(batch["attention_mask"].sum(dim=-1).max())
    worst = int(batch["attention_mask"].sum(dim=-1).argmax())
    assert DeepseekOCR2Collator(processor, max_length=longest)(examples)["input_ids"].shape[0] == len(examples)
    with pytest.raises(BadExample, match=f"exceed max_length {longest - 1}") as err:
        DeepseekOCR2Collator(processor, max_length=longest - 1)(examples)
    assert err.value.index == worst and "image slots" in err.value.reason


@pytest.mark.parametrize(
    "dtype, want", [(torch.bfloat16, torch.bfloat16), ("bf16", torch.bfloat16), ("torch.float16", torch.float16)]
)
def test_pixel_dtype_follows_the_argument(processor, examples, dtype, want):
    batch = DeepseekOCR2Collator(processor, dtype=dtype)(examples[:2])
    assert batch["pixel_values"].dtype == want and batch["pixel_values_local"].dtype == want
    assert batch["input_ids"].dtype == torch.long and batch["labels"].dtype == torch.long
    ref = _reference(processor, examples[:2])
    assert torch.equal(batch["pixel_values"], ref["pixel_values"].to(want))
    assert DeepseekOCR2Collator(processor, dtype="float32").validate(batch)  # the builder notices a mismatch


def test_refuses_a_dtype_that_is_not_floating(processor):
    with pytest.raises(ValueError, match="dtype='int8'"):
        DeepseekOCR2Collator(processor, dtype="int8")


def test_left_padding_keeps_the_rules(folder, examples):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(folder))
    processor.tokenizer.padding_side = "left"
    batch = DeepseekOCR2Collator(processor)(examples[:3])
    tok = processor.tokenizer
    assert (batch["attention_mask"][:, 0] == 0).any()  # really left-padded
    assert DeepseekOCR2Collator(processor).validate(batch) == []
    for i, example in enumerate(examples[:3]):
        sup = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert tok.decode(sup) == example["text"] + tok.eos_token


def test_validate_catches_what_the_model_would_not(builder, examples):
    batch = builder(examples[:2])
    assert builder.validate(batch) == []

    few = {**batch, "input_ids": batch["input_ids"].clone()}
    first_slot = int((few["input_ids"][0] == builder.image_token_id).nonzero()[0])
    few["input_ids"][0, first_slot] = builder.tokenizer.pad_token_id
    assert any("sample 0 has" in p and "image slots" in p for p in builder.validate(few))

    on_slots = {**batch, "labels": batch["labels"].clone()}
    on_slots["labels"][0, first_slot] = builder.image_token_id
    assert any("on image slots" in p for p in builder.validate(on_slots))

    on_pad = {**batch, "labels": batch["labels"].clone()}
    pad = (batch["attention_mask"] == 0).nonzero()
    on_pad["labels"][tuple(pad[0])] = 5
    assert any("padding" in p for p in builder.validate(on_pad))

    no_tiles = {k: v for k, v in batch.items() if k != "num_local_patches"}
    assert any("num_local_patches" in p for p in builder.validate(no_tiles))


class TypedProcessor:
    """The processor plus a per-token output, as some processors add (token types)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, **kwargs):
        out = self.inner(**kwargs)
        out["mm_token_type_ids"] = (out["input_ids"] == self.inner.image_token_id).long()
        return out


def test_per_token_outputs_are_extended_over_the_target(processor, examples):
    batch = DeepseekOCR2Collator(TypedProcessor(processor))(examples[3:5])
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    assert torch.equal(batch["mm_token_type_ids"], (batch["input_ids"] == processor.image_token_id).long())


def test_for_model_takes_the_models_dtype(processor, model):
    assert DeepseekOCR2Collator.for_model(processor, model).dtype == torch.float32
    assert DeepseekOCR2Collator.for_model(processor, torch.nn.Linear(2, 2).to(torch.bfloat16)).dtype == torch.bfloat16


def test_refuses_a_bare_tokenizer(processor):
    with pytest.raises(TypeError, match="DeepseekOCRCollator"):
        DeepseekOCR2Collator(processor.tokenizer)


def test_describe_names_the_layout(builder):
    info = builder.describe()
    assert info["family"] == "deepseek-ocr-2"
    assert info["class"] == "dsocr_probe.collators.deepseek_ocr2.DeepseekOCR2Collator"
    assert (info["global_slots"], info["slots_per_tile"]) == (256, 144)
    assert info["image_token_id"] == builder.processor.image_token_id
    assert info["dtype"] == "float32" and info["max_length"] == 1024 and info["prompt"] == PROMPT


def test_pickles_and_works_in_spawned_dataloader_workers(builder, examples):
    again = pickle.loads(pickle.dumps(builder))
    direct = builder(examples[:2])
    for key, value in again(examples[:2]).items():
        assert torch.equal(value, direct[key]), key

    loader = torch.utils.data.DataLoader(
        examples[:4], batch_size=2, collate_fn=builder, num_workers=1, multiprocessing_context="spawn"
    )
    batches = list(loader)
    assert len(batches) == 2
    for key, value in batches[0].items():
        assert torch.equal(value, direct[key]), key
