"""The family registry: lookups, the image-token rule and the generic fallback."""

from __future__ import annotations

from types import SimpleNamespace

from dsocr_probe.knowledge import families
from dsocr_probe.model import lora


class _Tokenizer:
    def __init__(self, vocab: dict[str, int]):
        self.vocab = vocab

    def convert_ids_to_tokens(self, token_id):
        return next((t for t, i in self.vocab.items() if i == token_id), None)


def test_every_family_of_the_issue_has_a_record():
    for model_type, name in (("DeepseekOCR", "deepseek-ocr-v1"), ("deepseek_ocr2", "deepseek-ocr-2"),
                             ("qwen2_vl", "qwen2-vl"), ("qwen2_5_vl", "qwen2.5-vl"), ("qwen3_vl", "qwen3-vl"),
                             ("got_ocr2", "got-ocr2"), ("paligemma", "paligemma"), ("gemma3", "gemma3"),
                             ("idefics3", "idefics3"), ("smolvlm", "idefics3"), ("llava", "llava"),
                             ("llava_next", "llava"), ("florence2", "florence-2")):
        fam = families.family_of(model_type)
        assert fam.name == name and not fam.guessed
    assert families.family_of("florence2").task_type == "SEQ_2_SEQ_LM"
    assert families.family_of("paligemma").token_type_ids == "prefix 0, suffix 1"


def test_an_unknown_family_falls_back_and_says_what_was_guessed():
    fam = families.family_for({"model_type": "aya_vision"})
    assert fam is families.GENERIC and fam.builder == families.PROCESSOR_BUILDER
    assert any("image token" in rule for rule in fam.guessed)
    seq2seq = families.family_for({"model_type": "some_ocr_t5", "is_encoder_decoder": True})
    assert seq2seq.builder == families.SEQ2SEQ_BUILDER and seq2seq.guessed and seq2seq.task_type == "SEQ_2_SEQ_LM"


def test_the_image_token_is_the_one_whose_id_the_config_names():
    tok = _Tokenizer({"<start_of_image>": 14, "<image_soft_token>": 16})
    gemma3 = SimpleNamespace(image_token="<start_of_image>", tokenizer=tok)
    assert families.image_token({"image_token_index": 16}, gemma3) == ("<image_soft_token>", "config.image_token_index = 16")
    # without an id in the config: the processor's own attribute (set in __init__, never saved)
    assert families.image_token({}, SimpleNamespace(image_token="<|image_pad|>", tokenizer=tok))[0] == "<|image_pad|>"
    assert families.image_token({}, SimpleNamespace(tokenizer=tok), saved={"image_token": "<imgpad>"})[0] == "<imgpad>"
    assert families.image_token({}, SimpleNamespace(tokenizer=tok))[0] is None


def test_settings_are_read_through_dotted_paths_and_the_image_processor():
    config = SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=2))
    assert families.setting(config, "vision_config.spatial_merge_size") == 2
    assert families.setting({"vision_config": {}}, "vision_config.spatial_merge_size") is None
    processor = SimpleNamespace(image_processor=SimpleNamespace(merge_size=1))
    assert families.processor_setting(processor, "merge_size") == 1


def test_lora_facts_come_from_the_registry():
    assert lora.no_grad_parts("DeepseekOCR") == ("sam_model", "vision_model", "projector")
    assert lora.no_grad_parts("deepseek_ocr2") == ()
    assert lora.task_type_for({"model_type": "florence2"}) == "SEQ_2_SEQ_LM"
    assert lora.task_type_for({"model_type": "qwen2_vl"}) == "CAUSAL_LM"
