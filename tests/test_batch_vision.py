"""Image slots against the visual features the model's own vision path yields (native models).

The batch probe runs ``get_image_features`` on the weightless meta-device instance and counts
the features; a processor whose settings do not fit the model makes a batch whose slot count
its own formula (and so the builder's validate) accepts, but the model's forward refuses.
These tests build that situation for DeepSeek-OCR-2, Idefics3 and LLaVA, check the real tiny
model refuses it too, and check the probe's NO-GO, its pass evidence and its fallback.
"""

from __future__ import annotations

import importlib
import inspect
import json
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
import transformers
import yaml
from probing import codes, context, linux_cpu, probe

from dsocr_probe.messages import word
from dsocr_probe.model import meta_run

HAS_OCR2 = hasattr(transformers, "DeepseekOcr2Processor")
needs_ocr2 = pytest.mark.skipif(not HAS_OCR2, reason=f"transformers {transformers.__version__} has no DeepSeek-OCR-2")
MISMATCH = "Image features and image tokens do not match"


def _found(result) -> dict:
    return {f.code: f for f in result.findings}


def _shown(result) -> list:
    return [(f.status.value, f.code, f.title) for f in result.findings]


def _evidence(finding) -> dict:
    """The evidence in English (its values are catalog messages)."""
    return finding.to_json()["evidence"]


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _user_collator(tmp_path: Path, source: str, data: Path) -> Path:
    """A training config whose data.collator is ``source``'s ``collate`` (a module of the team's own)."""
    module = f"dsocr_vision_collator_{uuid.uuid4().hex[:8]}"
    _user_collator.last = module
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"train_dir": str(data / "train"), "collator": f"{module}:collate"},
                                   "training": {"remove_unused_columns": False}}))
    return cfg


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    from dsocr_probe.demo.pages import write_dataset

    return write_dataset(tmp_path_factory.mktemp("pages"))


def _examples(pages: Path, n: int = 2) -> list:
    from dsocr_probe.inputs.dataset import load

    return load(pages).examples("train")[:n]


# ---------------------------------------------------------------- DeepSeek-OCR-2


@pytest.fixture(scope="module")
def ocr2(tmp_path_factory) -> Path:
    if not HAS_OCR2:
        pytest.skip(f"transformers {transformers.__version__} has no DeepSeek-OCR-2")
    from dsocr_probe.demo.ocr2 import write_tiny_ocr2

    return write_tiny_ocr2(tmp_path_factory.mktemp("ocr2") / "tiny-ocr2")


@needs_ocr2
def test_demo_batch_passes_with_feature_and_slot_counts(ocr2, pages):
    result = probe("batch", context(linux_cpu(), model=str(ocr2), data=pages))
    assert result.status.value == "pass", _shown(result)
    f = _found(result)["batch.image-features"]
    assert f.status.value == "pass"
    assert f.params["slots"] == f.params["features"] and word(f.params["scope"], "en") == "per sample"
    slots = [int(n) for n in f.params["slots"].split(", ")]
    assert len(slots) == 2 and all(n > 0 for n in slots)
    evidence = _evidence(f)
    assert evidence["image slots"].startswith(f.params["slots"]) and "config.image_token_id" in evidence["image slots"]
    assert evidence["visual features"].startswith(f.params["features"])
    assert "get_image_features on the meta-device instance" in evidence["counted by"]
    assert "pooler_output" in evidence["output"]


@needs_ocr2
def test_processor_settings_that_do_not_fit_the_model_are_no_go(ocr2, pages, tmp_path):
    """processor_config.json with another patch_size: the builder follows the processor, its
    validate finds nothing, the real model refuses the batch, and the probe says NO-GO."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from dsocr_probe.collators import DeepseekOCR2Collator

    folder = _copy(ocr2, tmp_path)
    _edit_json(folder / "processor_config.json", patch_size=4)
    builder = DeepseekOCR2Collator(AutoProcessor.from_pretrained(str(folder)))
    batch = builder(_examples(pages))
    assert builder.validate(batch) == []  # the processor's own formula agrees with itself
    model = AutoModelForImageTextToText.from_pretrained(str(folder))
    with pytest.raises(ValueError, match=MISMATCH), torch.no_grad():
        model(**batch)

    result = probe("batch", context(linux_cpu(), model=str(folder), data=pages))
    f = _found(result)["batch.image-features"]
    assert result.status.value == "fail" and f.status.value == "fail", _shown(result)
    slots = (batch["input_ids"] == builder.image_token_id).sum(dim=-1).tolist()
    assert f.params["slots"] == ", ".join(map(str, slots))
    assert f.params["slots"] in f.title and f.params["features"] in f.title and f.params["features"] != f.params["slots"]
    assert "DeepseekOcr2Processor makes" in f.fix and "AutoProcessor.from_pretrained" in f.fix
    assert MISMATCH in f.detail
    assert "Image slots" not in _found(result)["batch.layout"].title  # the layout pass claims no more than it checked


OCR2_COLLATOR = '''
from transformers import AutoProcessor

from dsocr_probe.collators import DeepseekOCR2Collator

processor = AutoProcessor.from_pretrained({model!r})
processor.images_kwargs = {{"crop_to_patches": False, "min_patches": 2, "max_patches": 6}}
builder = DeepseekOCR2Collator(processor)


def collate(examples):
    batch = builder(examples)
    if {labels_on_images}:
        slots = batch["input_ids"] == builder.image_token_id
        batch["labels"][slots] = batch["input_ids"][slots]
    return batch
'''


@needs_ocr2
def test_a_user_collator_with_pages_left_uncut_is_no_go(ocr2, pages, tmp_path):
    """The reproduction from the issue: crop_to_patches off in the processor's images_kwargs."""
    from transformers import AutoModelForImageTextToText

    cfg = _user_collator(tmp_path, OCR2_COLLATOR.format(model=str(ocr2), labels_on_images=False), pages)
    result = probe("batch", context(linux_cpu(), model=str(ocr2), train_config=cfg))
    f = _found(result)["batch.image-features"]
    assert f.status.value == "fail", _shown(result)
    assert "let the checkpoint's processor expand the image token" in f.fix
    batch = importlib.import_module(_user_collator.last).collate(_examples(pages))  # imported by the probe
    with pytest.raises(ValueError, match=MISMATCH), torch.no_grad():
        AutoModelForImageTextToText.from_pretrained(str(ocr2))(**batch)


@needs_ocr2
def test_a_user_collator_supervising_image_tokens_is_no_go(ocr2, pages, tmp_path):
    source = OCR2_COLLATOR.replace('processor.images_kwargs = {{"crop_to_patches": False, "min_patches": 2, "max_patches": 6}}\n', "")
    cfg = _user_collator(tmp_path, source.format(model=str(ocr2), labels_on_images=True), pages)
    result = probe("batch", context(linux_cpu(), model=str(ocr2), train_config=cfg))
    f = _found(result)["batch.labels-on-images"]
    assert f.status.value == "fail" and "image token positions" in f.title, _shown(result)
    assert "-100" in f.fix and "label checks" in _evidence(f)["checked by"]
    assert codes(result)["batch.image-features"] == "pass"  # the slots themselves are right


@needs_ocr2
def test_when_the_vision_path_cannot_run_the_evidence_says_which_check_was_used(ocr2, pages, monkeypatch):
    def refuse(model, batch):
        raise meta_run.NotCounted("aten::nonzero has no meta implementation")

    monkeypatch.setattr(meta_run, "count_image_features", refuse)
    result = probe("batch", context(linux_cpu(), model=str(ocr2), data=pages))
    assert result.status.value == "warn" and "batch.image-features" not in codes(result), _shown(result)
    assert _found(result)["batch.slots-not-compared"].status.value == "warn"  # never a pass that did not compare
    evidence = _evidence(_found(result)["batch.slots-not-compared"])
    assert "DeepseekOCR2Collator.validate" in evidence["checked by"]
    assert "not compared (aten::nonzero has no meta implementation)" in evidence["image slots vs the model's visual features"]


# ---------------------------------------------------------------- Idefics3 (SmolVLM), through ProcessorCollator


@pytest.fixture(scope="module")
def idefics3(tmp_path_factory) -> Path:
    if not hasattr(transformers, "Idefics3ForConditionalGeneration"):
        pytest.skip(f"transformers {transformers.__version__} has no Idefics3")
    from test_collator_processor import PATCH, SCALE, SPECIALS, VISION_SIZE, build_processor, build_tokenizer

    root = tmp_path_factory.mktemp("idefics3") / "tiny-idefics3"
    tokenizer = build_tokenizer()
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = transformers.Idefics3Config(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": VISION_SIZE, "patch_size": PATCH},
        text_config={"model_type": "llama", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 1024, "pad_token_id": ids["<|endoftext|>"]},
        scale_factor=SCALE, image_token_id=ids["<image>"], pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    transformers.Idefics3ForConditionalGeneration(config).save_pretrained(str(root))
    build_processor(tokenizer).save_pretrained(str(root))
    return root


def test_idefics3_batch_is_counted_where_the_class_can_count(idefics3, pages):
    result = probe("batch", context(linux_cpu(), model=str(idefics3), data=pages))
    counted = meta_run.image_feature_function(transformers.Idefics3ForConditionalGeneration) is not None
    assert result.status.value == ("pass" if counted else "warn"), _shown(result)
    if meta_run.image_feature_function(transformers.Idefics3ForConditionalGeneration) is not None:
        f = _found(result)["batch.image-features"]
        assert f.status.value == "pass" and f.params["slots"] == f.params["features"]
    else:  # transformers 4.x: the class has no get_image_features, and the report says what was checked instead
        assert "batch.image-features" not in codes(result)
        note = _evidence(_found(result)["batch.slots-not-compared"])["image slots vs the model's visual features"]
        assert "has no get_image_features" in note and "not compared" in note


def test_idefics3_processor_with_another_image_seq_len_is_no_go(idefics3, pages, tmp_path):
    if meta_run.image_feature_function(transformers.Idefics3ForConditionalGeneration) is None:
        pytest.skip(f"Idefics3 on transformers {transformers.__version__} has no get_image_features")
    folder = _copy(idefics3, tmp_path)
    _edit_json(folder / "processor_config.json", image_seq_len=9)  # the model yields 4 features per tile
    from transformers import AutoProcessor

    from dsocr_probe.collators import ProcessorCollator

    builder = ProcessorCollator(AutoProcessor.from_pretrained(str(folder)))
    batch = builder(_examples(pages))
    assert builder.validate(batch) == []
    with pytest.raises(ValueError), torch.no_grad():
        transformers.Idefics3ForConditionalGeneration.from_pretrained(str(folder))(**batch)
    result = probe("batch", context(linux_cpu(), model=str(folder), data=pages))
    f = _found(result)["batch.image-features"]
    assert f.status.value == "fail" and "Idefics3Processor makes" in f.fix, _shown(result)


# ---------------------------------------------------------------- LLaVA: both stacks, through a collator of the team's own

LLAVA_COLLATOR = '''
from PIL import Image
from transformers import AutoProcessor

processor = AutoProcessor.from_pretrained({model!r})
image_id = processor.tokenizer.convert_tokens_to_ids("<image>")


def collate(examples):
    images = [Image.open(e["image"]).convert("RGB") for e in examples]
    texts = ["<image>\\nFree OCR. " + e["text"] + processor.tokenizer.eos_token for e in examples]
    batch = dict(processor(images=images, text=texts, padding=True, return_tensors="pt"))
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    if not {labels_on_images}:
        labels[batch["input_ids"] == image_id] = -100
    batch["labels"] = labels
    return batch
'''
LLAVA_SLOTS = 16  # 32 px, 8 px patches, the class token dropped


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> Path:
    from test_collator_processor import SPECIALS, build_tokenizer

    root = tmp_path_factory.mktemp("llava") / "tiny-llava"
    tokenizer = build_tokenizer()
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = transformers.LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "max_position_embeddings": 512, "pad_token_id": ids["<|endoftext|>"]},
        image_token_index=ids["<image>"], image_seq_length=LLAVA_SLOTS, vision_feature_layer=-1,
        vision_feature_select_strategy="default", pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(str(root))
    images = (getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor)(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    extra = {"num_additional_image_tokens": 1} if "num_additional_image_tokens" in inspect.signature(
        transformers.LlavaProcessor.__init__).parameters else {}
    transformers.LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8,
                                vision_feature_select_strategy="default", image_token="<image>", **extra).save_pretrained(str(root))
    return root


def _llava_probe(folder: Path, pages: Path, tmp_path: Path, labels_on_images: bool = False):
    cfg = _user_collator(tmp_path, LLAVA_COLLATOR.format(model=str(folder), labels_on_images=labels_on_images), pages)
    return probe("batch", context(linux_cpu(), model=str(folder), train_config=cfg))


def test_llava_user_collator_is_counted(llava, pages, tmp_path):
    result = _llava_probe(llava, pages, tmp_path)
    assert result.status.value == "pass", _shown(result)
    f = _found(result)["batch.image-features"]
    assert f.params["slots"] == f.params["features"] == f"{LLAVA_SLOTS}, {LLAVA_SLOTS}", f.evidence
    assert "label checks" in _evidence(_found(result)["batch.layout"])["checked by"]


def test_llava_user_collator_labels_on_image_tokens_is_no_go(llava, pages, tmp_path):
    result = _llava_probe(llava, pages, tmp_path, labels_on_images=True)
    f = _found(result)["batch.labels-on-images"]
    assert f.status.value == "fail" and f"{2 * LLAVA_SLOTS} labels on image token positions" in f.title, _shown(result)


def test_llava_processor_patch_size_that_does_not_fit_is_no_go(llava, pages, tmp_path):
    folder = _copy(llava, tmp_path)
    _edit_json(folder / "processor_config.json", patch_size=4)  # 64 slots a page; the model yields 16
    result = _llava_probe(folder, pages, tmp_path)
    f = _found(result)["batch.image-features"]
    assert f.status.value == "fail", _shown(result)
    assert (f.params["slots"], f.params["features"]) == ("64, 64", f"{LLAVA_SLOTS}, {LLAVA_SLOTS}")
    batch = importlib.import_module(_user_collator.last).collate(_examples(pages))
    with pytest.raises(ValueError, match=MISMATCH), torch.no_grad():
        transformers.LlavaForConditionalGeneration.from_pretrained(str(folder))(**batch)


def test_llava_default_builder_is_counted(llava, pages):
    """No collator of the team's own: the probe builds ProcessorCollator on LLaVA's processor,
    which on transformers 4.x refuses one image list per sample and takes a flat list instead."""
    result = probe("batch", context(linux_cpu(), model=str(llava), data=pages))
    assert result.status.value == "pass", _shown(result)
    f = _found(result)["batch.image-features"]
    assert f.params["slots"] == f.params["features"] == f"{LLAVA_SLOTS}, {LLAVA_SLOTS}", f.evidence


def test_llava_builder_is_the_processors_output_plus_labels_and_trains(llava, pages):
    from dsocr_probe import ProcessorCollator
    from dsocr_probe.collators.base import IGNORE_INDEX, open_rgb

    builder = ProcessorCollator.from_pretrained(llava)
    examples = _examples(pages, 3)
    batch = builder(examples)
    processor, eos = builder.processor, builder.processor.tokenizer.eos_token
    texts = [builder.prompt + e["text"] + eos for e in examples]
    ref = processor(images=[open_rgb(e["image"], i) for i, e in enumerate(examples)], text=texts,
                    padding=True, return_tensors="pt")
    assert set(batch) == set(ref) | {"labels"}
    assert all(torch.equal(batch[k], ref[k]) for k in ref)
    assert builder.validate(batch) == []
    for i, example in enumerate(examples):
        supervised = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        # The prompt ends in a space, which byte-level BPE may merge into the target's first token: kept supervised.
        assert processor.tokenizer.decode(supervised) in (example["text"] + eos, " " + example["text"] + eos)
    model = transformers.LlavaForConditionalGeneration.from_pretrained(str(llava)).train()
    loss = model(**batch).loss
    loss.backward()
    projector = [p.grad for n, p in model.named_parameters() if "multi_modal_projector" in n]
    assert torch.isfinite(loss) and projector and all(g is not None and g.abs().sum() > 0 for g in projector)


@pytest.mark.parametrize("refuses, layout", [((), "per-sample"), (("per-sample",), "flat"),
                                             (("per-sample", "flat"), "per-sample")])
def test_builder_passes_pages_in_the_layout_the_processor_takes(llava, refuses, layout):
    from dsocr_probe import ProcessorCollator

    picky = Picky(transformers.AutoProcessor.from_pretrained(str(llava)), refuses)
    builder = ProcessorCollator(picky)
    assert builder.images_layout == builder.describe()["images_layout"] == layout
    page = torch.zeros(1)  # stands for a page: only the list shape is looked at here
    assert builder.images_argument([page, page]) == ([[page], [page]] if layout == "per-sample" else [page, page])


class Picky:
    """A processor that refuses some layouts of its ``images`` argument, as 4.x CLIP-based ones refuse nesting."""

    def __init__(self, inner, refuses):
        self.inner, self.refuses = inner, refuses
        self.tokenizer, self.image_processor, self.image_token = inner.tokenizer, inner.image_processor, "<image>"
        self.chat_template = None

    def __call__(self, images, **kwargs):
        layout = "per-sample" if isinstance(images[0], list) else "flat"
        if layout in self.refuses:
            raise ValueError(f"Invalid image type: {layout}")
        return self.inner(images=[i for row in images for i in row] if layout == "per-sample" else images, **kwargs)


# ---------------------------------------------------------------- counting the outputs of every transformers release


def test_outputs_of_either_release_are_counted():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    count = meta_run._count
    assert count(torch.zeros(2, 16, 8), "f").per_image == [16, 16]  # 4.x LLaVA: [images, tokens, hidden]
    flat = count(torch.zeros(40, 8), "f")  # 4.x Qwen2-VL: all tokens of all images in one run
    assert (flat.total, flat.per_image) == (40, None) and flat.per_sample(2) is None
    listed = count([torch.zeros(5, 8), torch.zeros(3, 8)], "f")
    assert (listed.total, listed.per_sample(2)) == (8, [5, 3])
    assert count((torch.zeros(1, 5, 8),), "f").per_image == [5]
    pooled = count(BaseModelOutputWithPooling(last_hidden_state=torch.zeros(2, 99, 8),
                                              pooler_output=[torch.zeros(4, 8), torch.zeros(6, 8)]), "f")
    assert pooled.per_image == [4, 6] and "pooler_output" in word(pooled.output, "en")
    hidden = count(BaseModelOutputWithPooling(last_hidden_state=torch.zeros(2, 7, 8)), "f")
    assert hidden.per_image == [7, 7] and "last_hidden_state" in word(hidden.output, "en")
    for bad in (torch.zeros(3), "features", [], BaseModelOutputWithPooling()):
        with pytest.raises(meta_run.NotCounted):
            count(bad, "f")


class _Toy(torch.nn.Module):
    """A vision path that reads its inputs' values (padding tiles, a count) and then, optionally,
    a value computed from its weights, which has no data on the meta device."""

    def __init__(self, read_weights: bool = False):
        super().__init__()
        self.proj = torch.nn.Linear(4, 8)
        self.read_weights = read_weights

    def get_image_features(self, pixel_values, num_tiles, scale: float = 1.0):
        real = pixel_values.abs().sum(dim=-1) != 0  # padding tiles are all zero
        tiles = pixel_values[real]
        features = self.proj(tiles.to(self.proj.weight.device)) * scale
        if self.read_weights and features.sum().item() > 0:
            features = features[:1]
        return list(features.split(num_tiles.tolist()))


def test_inputs_keep_their_values_on_the_meta_run():
    with torch.device("meta"):
        toy = _Toy()
    pixels = torch.ones(5, 4)
    pixels[2] = 0  # one padding tile
    count = meta_run.count_image_features(toy, {"pixel_values": pixels, "num_tiles": torch.tensor([3, 1])})
    assert count.per_image == [3, 1] and count.method == "_Toy.get_image_features"
    assert pixels[2].sum() == 0 and pixels[0].sum() == 4  # the batch is not touched
    with torch.device("meta"):
        reads = _Toy(read_weights=True)
    with pytest.raises(meta_run.NotCounted, match="did not run on the meta device"):
        meta_run.count_image_features(reads, {"pixel_values": pixels, "num_tiles": torch.tensor([3, 1])})
    with pytest.raises(meta_run.NotCounted, match="needs `num_tiles`"):
        meta_run.count_image_features(toy, {"pixel_values": pixels})
    with pytest.raises(meta_run.NotCounted, match="has no get_image_features"):
        meta_run.count_image_features(torch.nn.Linear(2, 2), {"pixel_values": pixels})


@pytest.mark.skipif(int(transformers.__version__.split(".")[0]) >= 5, reason="transformers 5.x has no legacy processing")
def test_llava_single_image_token_expanded_by_the_model_is_not_compared(llava, pages, tmp_path):
    """Without patch_size the 4.x processor leaves one <image> per page and the model expands it
    itself ("legacy processing"): the counts differ by design, so they are not compared, and the
    report says the slot count was not checked."""
    folder = _copy(llava, tmp_path)
    _edit_json(folder / "processor_config.json", patch_size=None)
    result = _llava_probe(folder, pages, tmp_path)
    assert result.status.value == "warn" and "batch.image-features" not in codes(result), _shown(result)
    layout = _found(result)["batch.slots-not-compared"]
    assert "not compared" in layout.title
    note = _evidence(layout)["image slots vs the model's visual features"]
    assert "legacy processing" in note and note.endswith("the slot count was not checked")
