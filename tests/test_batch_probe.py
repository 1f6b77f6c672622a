"""Each batch mistake the real DeepSeek-OCR v1 forward accepts silently (or fails on) is a NO-GO naming its fix."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from pages import write_pages
from probing import codes, context, linux_cpu, probe

TAMPER = '''
import torch
from transformers import AutoTokenizer

from dsocr_probe import DeepseekOCRCollator

_builder = DeepseekOCRCollator(AutoTokenizer.from_pretrained({model!r}, trust_remote_code=False), mode="tiny")


def _last_slot(mask):
    return int(mask.nonzero()[-1])


def collate(examples):
    batch = _builder(examples)
    how = {how!r}
    mask = batch["images_seq_mask"]
    if how == "pixel_values":
        batch["pixel_values"] = batch.pop("images")
    elif how == "too-few-slots":
        batch["images_seq_mask"][0, _last_slot(mask[0])] = False
    elif how == "labels-on-images":
        batch["labels"][mask] = batch["input_ids"][mask]
    elif how == "no-bos":
        batch["input_ids"][:, 0] = _builder.eos_token_id
    elif how == "int-mask":
        batch["images_seq_mask"] = mask.long()
    elif how == "bf16-pixels":
        batch["images"] = [(p.bfloat16(), g.bfloat16()) for p, g in batch["images"]]
    return batch
'''

SEEDED = {
    "pixel_values": ("batch.unknown-key", "images"),
    "too-few-slots": ("batch.image-slots", "image_token_count"),
    "labels-on-images": ("batch.labels-on-images", "-100"),
    "no-bos": ("batch.no-bos", "bos"),
    "int-mask": ("batch.mask-dtype", "torch.bool"),
    "bf16-pixels": ("batch.pixel-dtype", "dtype"),
}


def _project(tmp_path, v1_model, how: str):
    write_pages(tmp_path / "data" / "train", ["first page", "second page"])
    (tmp_path / f"tamper_{how.replace('-', '_')}.py").write_text(textwrap.dedent(TAMPER.format(model=str(v1_model), how=how)))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"train_dir": str(tmp_path / "data" / "train"), "collator": f"tamper_{how.replace('-', '_')}:collate"},
        "training": {"remove_unused_columns": False},
    }))
    return cfg


@pytest.mark.parametrize("how", sorted(SEEDED))
def test_seeded_batch_mistake_is_no_go_with_its_fix(tmp_path, v1_model, how):
    code, word = SEEDED[how]
    result = probe("batch", context(linux_cpu(), model=str(v1_model), train_config=_project(tmp_path, v1_model, how)))
    found = {f.code: f for f in result.findings}
    assert result.status.value == "fail", [(f.code, f.title) for f in result.findings]
    assert code in found, [(f.code, f.title) for f in result.findings]
    assert found[code].status.value == "fail" and word in found[code].fix, found[code]


def test_the_untampered_builder_passes(tmp_path, v1_model):
    result = probe("batch", context(linux_cpu(), model=str(v1_model), train_config=_project(tmp_path, v1_model, "none")))
    assert result.status.value == "pass", [(f.code, f.title) for f in result.findings]
    assert codes(result)["batch.layout"] == "pass"
    # v1 is remote code: its slots are checked against the layout facts, not by running a vision path
    assert "batch.image-features" not in codes(result)
    layout = next(f for f in result.findings if f.code == "batch.layout")
    assert layout.title == "Image slots, labels and masks follow the model's layout"
    assert layout.to_json()["evidence"] == {"checked by": "the DeepSeek-OCR v1 layout facts (slots per image, labels, bos)"}


def test_v1_batches_are_checked_against_the_layout_facts_not_a_vision_run(tmp_path, v1_model):
    data = write_pages(tmp_path / "train", ["first page", "second page"])
    result = probe("batch", context(linux_cpu(), model=str(v1_model), data=data))
    assert result.status.value == "pass", [(f.code, f.title) for f in result.findings]
    assert "batch.image-features" not in codes(result)
    layout = next(f for f in result.findings if f.code == "batch.layout")
    assert layout.to_json()["evidence"] == {"checked by": "DeepseekOCRCollator.validate (the builder's own rules)"}


def test_adapters_only_on_vision_modules_is_no_go(tmp_path, v1_model):
    transformers = pytest.importorskip("transformers")
    from packaging.version import Version

    if Version(transformers.__version__) > Version("4.47.1"):
        pytest.skip("the v1 remote code imports only on transformers <= 4.47.1")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"lora": {"r": 4, "target_modules": ["qkv", "proj"], "task_type": "CAUSAL_LM"},
                                   "training": {"remove_unused_columns": False}}))
    ctx = context(linux_cpu(transformers=transformers.__version__), model=str(v1_model), train_config=cfg,
                  trust_remote_code=True, allow_unpinned=True)
    f = next(f for f in probe("train_config", ctx).findings if f.code == "train_config.lora-vision-only")
    assert f.status.value == "fail" and "q_proj" in f.fix
