"""DeepseekOCR2Collator on a tiny random-weight DeepSeek-OCR-2 built offline.

The builder must hand the model exactly what DeepseekOcr2Processor makes (ids, pixels, tile
counts) and add only labels (and the pixel dtype): target + eos supervised, -100 on bos, prompt,
image slots and padding. The slot count must match the features the model's vision path makes.
Its own pixel path must equal the processor tensor for tensor over a table of page sizes, dtypes,
padding sides and processor settings, and give way to the processor wherever it would differ.
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
    from dsocr_probe.demo.ocr2 import write_tiny_ocr2
    from dsocr_probe.demo.pages import write_dataset

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
    from dsocr_probe.inputs.dataset import load

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
    assert any("sample 0 has" in str(p) and "image slots" in str(p) for p in builder.validate(few))

    on_slots = {**batch, "labels": batch["labels"].clone()}
    on_slots["labels"][0, first_slot] = builder.image_token_id
    assert any("on image slot" in str(p).replace("on an image slot", "on image slot") for p in builder.validate(on_slots))

    on_pad = {**batch, "labels": batch["labels"].clone()}
    pad = (batch["attention_mask"] == 0).nonzero()
    on_pad["labels"][tuple(pad[0])] = 5
    assert any("padding" in str(p) for p in builder.validate(on_pad))

    no_tiles = {k: v for k, v in batch.items() if k != "num_local_patches"}
    assert any("num_local_patches" in str(p) for p in builder.validate(no_tiles))


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
    builder = DeepseekOCR2Collator(TypedProcessor(processor))
    assert not builder.fast and "TypedProcessor" in builder.fallback_reason  # its own call adds the key
    batch = builder(examples[3:5])
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
    assert info["pixels_made_by"] in ("builder", "processor") and "fallback_reason" in info
    assert info["family"] == "deepseek-ocr-2"
    assert info["class"] == "dsocr_probe.collators.deepseek_ocr2.DeepseekOCR2Collator"
    assert (info["global_slots"], info["slots_per_tile"]) == (256, 144)
    assert info["image_token_id"] == builder.processor.image_token_id
    assert info["dtype"] == "float32" and info["max_length"] == 1024 and info["prompt"] == PROMPT


def test_pickles_and_works_in_spawned_dataloader_workers(builder, examples):
    again = pickle.loads(pickle.dumps(builder))
    assert (again.fast, again.fallback_reason) == (builder.fast, builder.fallback_reason)
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


# -- the builder's own pixels and ids: equal to the processor's -----------------------------------

# (width, height) -> local tiles, by the processor's rule for the tiny settings: 128 px global view,
# 96 px tiles, 2..6 tiles per page.
PAGES = {
    "one pixel": ((1, 1), 0),
    "small": ((40, 30), 0),
    "exactly one tile": ((96, 96), 0),
    "tall, within a tile": ((50, 96), 0),
    "square, just over a tile": ((97, 97), 4),
    "two tiles": ((200, 100), 2),
    "tall": ((100, 400), 4),
    "wide": ((500, 120), 4),
    "tie, small page keeps 3x1": ((175, 50), 3),
    "tie, large page takes 4x1": ((350, 100), 4),
    "max tiles": ((300, 200), 6),
    "thin strip": ((1000, 20), 6),
    "global short side of 2.5 px rounds to even": ((256, 5), 6),
    "global size exactly": ((128, 128), 4),
}
OTHER_PROMPT = "<image>\n<|grounding|>Convert the document to markdown. "


def _page(size, seed):
    """Noise on a gradient: any difference in resizing, cutting or padding shows in the pixels."""
    import numpy as np

    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, w, dtype=np.float64)[None, :, None] * np.ones((h, 1, 3))
    noise = rng.integers(-60, 60, (h, w, 3))
    return Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8), "RGB")


def _rows(sizes, prompts=(None,)):
    rows = []
    for i, size in enumerate(sizes):
        row = {"image": _page(size, i), "text": f"line {i}: page of {size[0]}x{size[1]}"}
        prompt = prompts[i % len(prompts)]
        if prompt is not None:
            row["prompt"] = prompt
        rows.append(row)
    return rows


def _tiny_processor(tokenizer, images_kwargs=None, **image_settings):
    from dsocr_probe.demo import ocr2 as demo_ocr2

    images = transformers.DeepseekOcr2ImageProcessorPil(
        size={"height": demo_ocr2.GLOBAL_SIZE, "width": demo_ocr2.GLOBAL_SIZE}, tile_size=demo_ocr2.TILE_SIZE, **image_settings
    )
    processor = transformers.DeepseekOcr2Processor(
        image_processor=images, tokenizer=tokenizer, patch_size=demo_ocr2.SAM_PATCH, downsample_ratio=demo_ocr2.DOWNSAMPLE
    )
    if images_kwargs is not None:
        processor.images_kwargs = images_kwargs  # what the processor passes at call time, over the image processor's
    return processor


@pytest.fixture(scope="module")
def tokenizer():
    from dsocr_probe.demo.ocr2 import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return _tiny_processor(tokenizer)


def _assert_equals_processor(batch, processor, rows, dtype=torch.float32):
    """Pixels equal the processor's (cast to the builder's dtype), and each sample's ids are the
    processor's prompt ids followed by the target's and eos."""
    images = [open_rgb(row["image"], i) for i, row in enumerate(rows)]
    ref = processor(images=images, text=[row.get("prompt", PROMPT) for row in rows], padding=True, return_tensors="pt")
    assert set(batch) == set(ref) | {"labels"}
    for key in ("pixel_values", "pixel_values_local", "num_local_patches"):
        if key in ref:
            want = ref[key].to(dtype) if ref[key].is_floating_point() else ref[key]
            assert batch[key].dtype == want.dtype and torch.equal(batch[key], want), key
    tok = processor.tokenizer
    for i, row in enumerate(rows):
        prompt = ref["input_ids"][i][ref["attention_mask"][i].bool()].tolist()
        target = tok(row["text"], add_special_tokens=False)["input_ids"]
        assert batch["input_ids"][i][batch["attention_mask"][i].bool()].tolist() == prompt + target + [tok.eos_token_id]


@pytest.mark.parametrize("case", list(PAGES))
def test_own_path_equals_the_processor_page_by_page(tiny, case):
    size, tiles = PAGES[case]
    builder = DeepseekOCR2Collator(tiny)
    assert builder.fast, builder.fallback_reason
    rows = _rows([size])
    batch = builder(rows)
    assert batch["num_local_patches"].tolist() == [tiles]
    _assert_equals_processor(batch, tiny, rows)
    assert builder.validate(batch) == []


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_own_path_equals_the_processor_path_on_a_mixed_batch(tokenizer, dtype, padding_side):
    tokenizer = pickle.loads(pickle.dumps(tokenizer))  # a copy: the padding side is changed
    tokenizer.padding_side = padding_side
    processor = _tiny_processor(tokenizer)
    rows = _rows([size for size, _ in PAGES.values()], prompts=(None, OTHER_PROMPT))
    fast, slow = DeepseekOCR2Collator(processor, dtype=dtype), DeepseekOCR2Collator(processor, dtype=dtype, fast=False)
    assert fast.fast and not slow.fast and slow.fallback_reason == "fast=False"
    assert fast.describe()["pixels_made_by"] == "builder" and slow.describe()["pixels_made_by"] == "processor"
    ours, theirs = fast(rows), slow(rows)
    assert list(ours) == list(theirs)
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key
    assert ours["num_local_patches"].tolist() == [tiles for _, tiles in PAGES.values()]
    _assert_equals_processor(ours, processor, rows, dtype)
    again = fast(rows)  # the second time from the prompt cache
    assert all(torch.equal(again[key], ours[key]) for key in ours)


SETTINGS = {
    "own mean and std, white padding, bilinear": dict(
        image_settings=dict(image_mean=[0.48, 0.46, 0.41], image_std=[0.27, 0.26, 0.28], background_color=[255, 255, 255], resample=2)
    ),
    "processor asks for 1..9 tiles": dict(images_kwargs={"crop_to_patches": True, "min_patches": 1, "max_patches": 9}),
    "no tiles": dict(images_kwargs={"crop_to_patches": False, "min_patches": 2, "max_patches": 6}),
    "rescale only": dict(image_settings=dict(do_normalize=False)),
    "normalise only": dict(image_settings=dict(do_rescale=False)),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_own_path_follows_the_processor_settings(tokenizer, case):
    processor = _tiny_processor(tokenizer, SETTINGS[case].get("images_kwargs"), **SETTINGS[case].get("image_settings", {}))
    builder = DeepseekOCR2Collator(processor)
    assert builder.fast, builder.fallback_reason
    rows = _rows([size for size, _ in PAGES.values()])
    _assert_equals_processor(builder(rows), processor, rows)


@pytest.fixture(scope="module")
def full_size(tokenizer):
    """The released checkpoint's image settings: 1024 px global view, 768 px tiles, 16 px patches."""
    images = transformers.DeepseekOcr2ImageProcessorPil(size={"height": 1024, "width": 1024}, tile_size=768)
    return transformers.DeepseekOcr2Processor(image_processor=images, tokenizer=tokenizer, patch_size=16, downsample_ratio=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_own_path_equals_the_processor_at_full_size(full_size, dtype):
    builder = DeepseekOCR2Collator(full_size, dtype=dtype)
    assert builder.fast, builder.fallback_reason
    rows = _rows([(1240, 1754), (700, 500)])  # an A4 scan at 150 dpi (2x3 tiles), a small page
    batch = builder(rows)
    assert batch["num_local_patches"].tolist() == [6, 0]
    assert builder.expected_slots(6) == 256 + 144 * 6 + 1
    _assert_equals_processor(batch, full_size, rows, dtype)


def test_transparency_key_is_flattened_as_the_processor_does(tiny):
    page = _page((200, 100), 0)
    keyed = page.copy()
    keyed.info["transparency"] = page.getpixel((0, 0))  # an RGB PNG's tRNS colour: those pixels turn white
    builder = DeepseekOCR2Collator(tiny)
    plain, flattened = builder([{"image": page, "text": "x"}]), builder([{"image": keyed, "text": "x"}])
    assert not torch.equal(plain["pixel_values"], flattened["pixel_values"])  # the key really changes pixels
    _assert_equals_processor(flattened, tiny, [{"image": keyed, "text": "x"}])


def test_too_thin_page_is_refused_by_both_paths(tiny):
    rows = _rows([(200, 100), (1, 300)])
    for fast in (True, False):
        with pytest.raises(BadExample) as err:
            DeepseekOCR2Collator(tiny, fast=fast)(rows)
        assert err.value.index == 1
    with pytest.raises(BadExample, match="1x300 px page is too thin"):
        DeepseekOCR2Collator(tiny)(rows)


# -- falling back to the processor ------------------------------------------------------------------


def test_processor_set_to_add_outputs_is_used_as_is(tokenizer):
    processor = _tiny_processor(tokenizer)
    processor.return_mm_token_type_ids = True
    builder = DeepseekOCR2Collator(processor)
    assert not builder.fast and "return_mm_token_type_ids" in builder.fallback_reason
    batch = builder(_rows([(200, 100), (40, 30)]))
    assert torch.equal(batch["mm_token_type_ids"], (batch["input_ids"] == processor.image_token_id).long())


@pytest.mark.parametrize(
    "image_settings, reason",
    [
        (dict(do_rescale=False, do_normalize=False), "uint8"),
        (dict(background_color=127), "background_color"),
    ],
)
def test_settings_not_covered_fall_back_to_the_processor(tokenizer, image_settings, reason):
    processor = _tiny_processor(tokenizer, **image_settings)
    builder = DeepseekOCR2Collator(processor)
    assert not builder.fast and reason in builder.fallback_reason
    rows = _rows([(200, 100), (40, 30)])
    batch = builder(rows)
    ref = processor(images=[r["image"] for r in rows], text=[PROMPT] * 2, padding=True, return_tensors="pt")
    assert torch.equal(batch["pixel_values"], ref["pixel_values"])


def test_a_processor_that_changed_is_noticed(tokenizer, monkeypatch):
    """Another transformers release may compute pixels or slots otherwise: the probe page catches it."""
    monkeypatch.setattr(transformers.DeepseekOcr2ImageProcessorPil, "rescale", lambda self, image, scale, **kw: image / 256.0)
    processor = _tiny_processor(tokenizer)
    builder = DeepseekOCR2Collator(processor)
    assert not builder.fast and "pixel_values" in builder.fallback_reason
    rows = _rows([(200, 100), (40, 30)])
    _assert_equals_processor(builder(rows), processor, rows)

    monkeypatch.undo()
    one_more = transformers.DeepseekOcr2Processor.replace_image_token
    monkeypatch.setattr(transformers.DeepseekOcr2Processor, "replace_image_token",
                        lambda self, *a, **kw: one_more(self, *a, **kw) + self.image_token)
    builder = DeepseekOCR2Collator(processor)
    assert not builder.fast and "input_ids" in builder.fallback_reason


def test_describe_reports_the_settings_a_processor_call_uses(tokenizer):
    processor = _tiny_processor(tokenizer, {"crop_to_patches": True, "min_patches": 2, "max_patches": 6},
                                crop_to_patches=False)
    builder = DeepseekOCR2Collator(processor)
    assert builder.describe()["crop_to_patches"] is True  # the processor's call-time default wins
    assert builder(_rows([(200, 100)]))["num_local_patches"].tolist() == [2]


@pytest.mark.parametrize("case", ["small", "two tiles", "tall", "max tiles"])
def test_tokens_before_target_match_the_batch(tiny, case):
    size, _ = PAGES[case]
    builder = DeepseekOCR2Collator(tiny)
    batch = builder(_rows([size]))
    assert builder.tokens_before_target(*size) == int((batch["labels"][0] == -100).sum())
    assert DeepseekOCR2Collator(tiny, fast=False).tokens_before_target(*size) is None  # only the processor knows
