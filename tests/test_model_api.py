"""Model API probe: the checkpoint's processor and tokenizer files against config.json's model_type.

DeepSeek-OCR v1's config.json says model_type DeepseekOCR while its processor_config.json names
DeepseekVLV2Processor, a deepseek_vl_v2 processor that no transformers release ships; our v1
stand-in keeps that file as published. The processor probe reports the missing class; the model
API probe reports the disagreement about the model type, once, with both values and the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import transformers
import yaml
from probing import context, linux_cpu, probe

from dsocr_probe.probes.model_api import type_of_class

CODE = "model_api.model-type-mismatch"


def _findings(name: str, folder: Path, **options) -> dict:
    return {f.code: f for f in probe(name, context(linux_cpu(), model=str(folder), **options)).findings}


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def test_v1_processor_class_of_another_model_type_warns_with_both_values(v1_model):
    f = _findings("model_api", v1_model)[CODE]
    assert f.status.value == "warn"
    assert "processor_config.json" in f.title and "DeepseekVLV2Processor" in f.title
    assert "`deepseek_vl_v2`" in f.title and "`DeepseekOCR`" in f.title
    assert "You are using a model of type deepseek_vl_v2 to instantiate a model of type DeepseekOCR" in f.detail
    assert "not this model's processor" in f.detail
    assert "DeepseekOCRCollator" in f.fix
    assert f.evidence == {"config.json model_type": "DeepseekOCR",
                          "processor_config.json": "processor_class DeepseekVLV2Processor → deepseek_vl_v2"}


def test_the_missing_class_itself_stays_the_processor_probes_finding(v1_model):
    api, processor = _findings("model_api", v1_model), _findings("processor", v1_model)
    assert "processor.class-not-shipped" in processor and CODE not in processor
    assert [c for c in api if c.startswith("processor.")] == []


def test_with_the_verified_builder_the_mismatch_is_reported_as_a_fact(v1_model, tmp_path):
    """As the processor probe does: nothing of the team's own calls AutoProcessor, so it is no warning."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"training": {"remove_unused_columns": False}}))
    f = _findings("model_api", v1_model, train_config=cfg)[CODE]
    assert f.status.value == "pass" and "deepseek_vl_v2" in f.title


def test_a_class_of_the_same_model_type_or_one_transformers_ships_is_no_mismatch(v1_model, tmp_path):
    folder = _copy(v1_model, tmp_path)
    _edit_json(folder / "processor_config.json", processor_class="DeepseekOCRProcessor")
    assert CODE not in _findings("model_api", folder)
    assert "processor.class-not-shipped" in _findings("processor", folder)  # still not shipped: the processor probe says so
    _edit_json(folder / "processor_config.json", processor_class="LlavaProcessor")  # shipped: AutoProcessor builds it
    assert CODE not in _findings("model_api", folder)


@pytest.fixture()
def llama(tmp_path) -> Path:
    folder = tmp_path / "tiny-llama"
    transformers.LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                             num_attention_heads=2, num_key_value_heads=1).save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("file", ["tokenizer_config.json", "preprocessor_config.json", "processor_config.json"])
def test_a_model_type_of_another_family_in_any_file_warns(llama, file):
    _edit_json(llama / file, model_type="qwen2")
    f = _findings("model_api", llama)[CODE]
    assert f.status.value == "warn"
    assert f.title == f"{file} says model_type `qwen2` but config.json says `llama`"
    assert f"Restore {file}" in f.fix
    assert f.params["cls"] is None and f.params["builder"] is None


def test_the_same_model_type_written_differently_is_no_mismatch(llama):
    _edit_json(llama / "tokenizer_config.json", model_type="Llama")
    assert CODE not in _findings("model_api", llama)


def test_model_types_read_from_class_names():
    assert type_of_class("DeepseekVLV2Processor") == "deepseek_vl_v2"
    assert type_of_class("Qwen2VLProcessor") == "qwen2_vl"
    assert type_of_class("DeepseekOcr2Processor") == "deepseek_ocr2"
    assert type_of_class("GotOcr2ImageProcessorFast") == "got_ocr2"
    assert type_of_class("LlavaNextProcessor") == "llava_next"
