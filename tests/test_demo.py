"""The built-in demo target: built once per stack into the cache, atomically, and usable for training.

On transformers with native DeepSeek-OCR-2 it is a tiny random-weight OCR-2; elsewhere the v1
stand-in. Either way it brings a rendered dataset and a training config that fit each other.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import transformers

from dsocr_probe.demo import target as demo
from dsocr_probe.collators.base import IGNORE_INDEX

NATIVE_OCR2 = hasattr(transformers, "DeepseekOcr2ForConditionalGeneration")
V1_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
ocr2_only = pytest.mark.skipif(not NATIVE_OCR2, reason=f"transformers {transformers.__version__} has no native DeepSeek-OCR-2")
v1_only = pytest.mark.skipif(
    NATIVE_OCR2 or not V1_LOADS, reason="the demo is the v1 stand-in with weights only where OCR-2 is absent and v1 code loads"
)
new_v1_broken = pytest.mark.skipif(V1_LOADS, reason="this transformers still imports the v1 remote code")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("dsocr-cache")
        mp.setenv(demo.CACHE_ENV, str(root))
        yield root


@pytest.fixture(scope="module")
def target(cache):
    return demo.demo_target()


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(demo.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _manifest(target):
    return json.loads((target.path / demo.MANIFEST).read_text(encoding="utf-8"))


def test_target_describes_the_cached_folder(target, cache):
    family = "ocr2" if NATIVE_OCR2 else "v1"
    assert target.name == f"dsocr-demo-{family}"
    assert target.demo is True
    assert target.path.parent == cache
    assert transformers.__version__ in target.path.name and f"format-{demo.FORMAT}" in target.path.name
    assert target.config == json.loads((target.path / "config.json").read_text(encoding="utf-8"))
    assert target.model_type == ("deepseek_ocr2" if NATIVE_OCR2 else "DeepseekOCR")
    assert target.dataset == target.path / "dataset" and target.dataset.is_dir()
    manifest = _manifest(target)
    assert manifest["family"] == family and manifest["transformers"] == transformers.__version__
    # a few MB at most, and a build of a few seconds (generous bound: the machine may be shared)
    size = sum(f.stat().st_size for f in target.path.rglob("*") if f.is_file())
    assert size < 5 * 2**20
    assert manifest["build_seconds"] < 30


def test_second_call_reuses_the_folder(target):
    stamp = (target.path / demo.MANIFEST).stat().st_mtime_ns
    started = time.perf_counter()
    again = demo.demo_target()
    assert time.perf_counter() - started < 1.0
    assert again.path == target.path and again.config == target.config
    assert (target.path / demo.MANIFEST).stat().st_mtime_ns == stamp
    assert not list(target.path.parent.glob(".demo-*"))  # no build leftovers


def test_dataset_is_clean_and_rendered(target):
    from PIL import Image

    from dsocr_probe.inputs.dataset import load

    data = load(target.dataset)
    assert set(data.splits) == {"train", "val"}
    train, val = data.splits["train"], data.splits["val"]
    assert (len(train.rows), len(val.rows)) == (6, 2)
    assert not train.problems and not val.problems
    texts = [r.text for r in train.rows + val.rows]
    assert len(set(texts)) == len(texts) and all(t.strip() for t in texts)
    rows = json.loads((target.dataset / "train" / "metadata.json").read_text(encoding="utf-8"))
    assert rows[0] == {"image_path": "images/00001.png", "text": train.rows[0].text}
    for row in train.rows + val.rows:
        with Image.open(row.image) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert 64 <= max(im.size) <= 320
            assert im.getpixel((im.width - 1, im.height - 1)) == (255, 255, 255)  # white paper
            assert im.convert("L").getextrema()[0] < 100  # and dark ink on it


def test_training_config_fits_the_demo_and_the_installed_libraries(target, tmp_path):
    from peft import LoraConfig, TaskType
    from transformers import TrainingArguments

    from dsocr_probe.inputs import trainconfig

    cfg = trainconfig.load(target.path / demo.TRAIN_CONFIG)
    assert cfg.sectioned
    assert cfg.model == demo.demo_train_config(target.path)["model"] and Path(cfg.model["name"]) == target.path
    assert {k: str(v) for k, v in cfg.splits().items()} == {
        "train": str(target.dataset / "train"), "val": str(target.dataset / "val")}
    training = dict(cfg.training, output_dir=str(tmp_path / "out"))
    unknown = set(training) - set(inspect.signature(TrainingArguments.__init__).parameters)
    assert not unknown
    args = TrainingArguments(**training)
    assert args.optim.value == "adamw_torch" and args.remove_unused_columns is False
    assert args.dataloader_num_workers == 0 and args.per_device_train_batch_size <= 6
    lora = LoraConfig(**cfg.lora)
    assert lora.task_type == TaskType.CAUSAL_LM
    assert cfg.data["max_length"] > 0 and cfg.data["mode"]


def test_killed_build_leaves_no_half_folder(fresh_cache):
    """SIGKILL during a build (files written, not yet renamed): no demo folder appears; the next call builds."""
    script = (
        "import sys, time\n"
        "from dsocr_probe.demo import target as demo\n"
        "real = demo._build\n"
        "def build_then_hang(work, final):\n"
        "    real(work, final)\n"
        "    print('built', flush=True)\n"
        "    time.sleep(120)\n"
        "demo._build = build_then_hang\n"
        "demo.demo_target()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout.readline().strip() == "built"
        final = demo.demo_folder()
        leftovers = list(fresh_cache.glob(".demo-*.building"))
        assert len(leftovers) == 1 and (leftovers[0] / demo.MANIFEST).is_file()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not final.exists()
    target = demo.demo_target()
    assert target.path == final and (final / demo.MANIFEST).is_file()


def test_failed_build_cleans_up(fresh_cache, monkeypatch):
    real = demo._build

    def build_then_fail(work, final):
        real(work, final)
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "_build", build_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        demo.demo_target()
    assert not demo.demo_folder().exists()
    assert not list(fresh_cache.glob(".demo-*"))


def test_losing_a_build_race_uses_the_winners_folder(fresh_cache, monkeypatch):
    import shutil

    real = demo._build

    def build_while_another_process_finishes(work, final):
        real(work, final)
        shutil.copytree(work, final)  # the other process renames its build into place first

    monkeypatch.setattr(demo, "_build", build_while_another_process_finishes)
    target = demo.demo_target()
    assert (target.path / demo.MANIFEST).is_file()
    assert not list(fresh_cache.glob(".demo-*"))


def test_incomplete_folder_is_rebuilt_and_stale_leftovers_removed(fresh_cache):
    final = demo.demo_folder()
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}", encoding="utf-8")  # no manifest: not a finished build
    stale = fresh_cache / ".demo-old.building"
    stale.mkdir()
    old = time.time() - 2 * demo.STALE_BUILD_S
    os.utime(stale, (old, old))
    target = demo.demo_target()
    assert target.config.get("model_type") and (final / demo.MANIFEST).is_file()
    assert not stale.exists()


@ocr2_only
def test_ocr2_demo_loads_with_auto_classes_and_trains(target):
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from dsocr_probe.collators import DeepseekOCR2Collator
    from dsocr_probe.inputs.dataset import load

    config = AutoConfig.from_pretrained(str(target.path))
    processor = AutoProcessor.from_pretrained(str(target.path))
    assert type(processor).__name__ == "DeepseekOcr2Processor"
    tok = processor.tokenizer
    # config and tokenizer agree on the special ids
    assert config.image_token_id == processor.image_token_id == tok.convert_tokens_to_ids("<image>")
    text = config.text_config
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert text.vocab_size >= len(tok)
    assert (target.path / "model.safetensors").is_file()

    model = AutoModelForImageTextToText.from_pretrained(str(target.path)).train()
    cfg = demo.demo_train_config(target.path)
    builder = DeepseekOCR2Collator(processor, max_length=cfg["data"]["max_length"])
    examples = load(target.dataset).examples("train")
    batch = builder(examples)  # every demo page fits the configured max_length
    assert builder.validate(batch) == []
    small = builder(examples[:2])
    out = model(**small)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert (small["labels"] != IGNORE_INDEX).any()


@ocr2_only
def test_ocr2_weights_are_seeded(tmp_path):
    from safetensors.torch import load_file

    from dsocr_probe.demo.ocr2 import write_tiny_ocr2

    a = load_file(str(write_tiny_ocr2(tmp_path / "a") / "model.safetensors"))
    b = load_file(str(write_tiny_ocr2(tmp_path / "b") / "model.safetensors"))
    c = load_file(str(write_tiny_ocr2(tmp_path / "c", seed=1) / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@v1_only
def test_v1_demo_is_the_standin_with_weights_and_trains(target):
    from transformers import AutoModel, AutoTokenizer

    from dsocr_probe.collators import DeepseekOCRCollator
    from dsocr_probe.inputs.dataset import load

    assert (target.path / "model.safetensors").is_file() and target.needs_remote_code
    cfg = demo.demo_train_config(target.path)
    assert cfg["model"]["trust_remote_code"] is True and cfg["model"]["auto_class"] == "AutoModel"
    tokenizer = AutoTokenizer.from_pretrained(str(target.path))
    model = AutoModel.from_pretrained(str(target.path), trust_remote_code=True).train()
    builder = DeepseekOCRCollator(tokenizer, cfg["data"]["mode"], max_length=cfg["data"]["max_length"])
    examples = load(target.dataset).examples("train")
    builder(examples)  # every demo page fits the configured max_length
    out = model(**builder(examples[:2]))
    assert torch.isfinite(out.loss)
    out.loss.backward()


@new_v1_broken
def test_v1_demo_without_weights_where_neither_model_runs(fresh_cache, monkeypatch):
    """Forced onto this stack, the v1 stand-in keeps its files and says why it has no weights."""
    monkeypatch.setattr(demo, "demo_family", lambda: demo.V1)
    target = demo.demo_target()
    assert target.name == "dsocr-demo-v1" and target.model_type == "DeepseekOCR"
    assert not (target.path / "model.safetensors").exists()
    assert any("without weights" in note and "LlamaFlashAttention2" in note for note in target.notes)
