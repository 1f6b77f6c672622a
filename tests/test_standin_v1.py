"""The DeepSeek-OCR v1 stand-in behaves like the published checkpoint where training depends on it.

Facts checked against reference/deepseek_ocr_v1.md: the checkpoint files, which Auto classes load
it, the import failure on new transformers, the forward signature, and the mistakes the real
forward accepts silently or rejects loudly.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json

import pytest
import torch
import transformers
from PIL import Image

from dsocr_probe.demo.standin import StandinUnavailable, write_v1_standin

REMOTE_CODE_LOADS = hasattr(importlib.import_module("transformers.models.llama.modeling_llama"), "LlamaFlashAttention2")
legacy_only = pytest.mark.skipif(not REMOTE_CODE_LOADS, reason="the v1 remote code imports only on transformers <= 4.47.1")
new_only = pytest.mark.skipif(REMOTE_CODE_LOADS, reason="this transformers still has LlamaFlashAttention2")

FORWARD_PARAMS = [
    "input_ids", "attention_mask", "position_ids", "past_key_values", "inputs_embeds", "labels", "use_cache",
    "output_attentions", "output_hidden_states", "images", "images_seq_mask", "images_spatial_crop", "return_dict",
]


def _json(folder, name):
    return json.loads((folder / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(v1_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(v1_model), trust_remote_code=False)


@pytest.fixture(scope="module")
def model(v1_model):
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(v1_model), trust_remote_code=True)
    torch.manual_seed(0)
    return AutoModel.from_config(config, trust_remote_code=True).train()


@pytest.fixture(scope="module")
def batch(tokenizer):
    """Two Tiny-mode samples built by the v1 builder: 73 image slots each."""
    from dsocr_probe.collators.deepseek_ocr_v1 import DeepseekOCRCollator

    builder = DeepseekOCRCollator(tokenizer, "tiny")
    return builder([
        {"image": Image.new("RGB", (96, 64), "red"), "text": "Привет мир"},
        {"image": Image.new("RGB", (64, 96), "white"), "text": "hello"},
    ])


def _copy(batch):
    return copy.deepcopy(batch)


# ---------------------------------------------------------------- the folder (both stacks)


def test_config_maps_only_autoconfig_and_automodel(v1_model):
    config = _json(v1_model, "config.json")
    assert config["model_type"] == "DeepseekOCR"
    assert config["architectures"] == ["DeepseekOCRForCausalLM"]
    assert config["auto_map"] == {
        "AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
        "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM",
    }
    assert config["transformers_version"] == "4.46.3"
    assert config["hidden_size"] <= 64 and config["num_hidden_layers"] == 2


def test_processor_config_names_a_processor_nobody_ships(v1_model):
    processor = _json(v1_model, "processor_config.json")
    assert processor["processor_class"] == "DeepseekVLV2Processor"
    assert not hasattr(transformers, "DeepseekVLV2Processor")
    assert (processor["image_token"], processor["patch_size"], processor["downsample_ratio"]) == ("<image>", 16, 4)
    assert processor["image_mean"] == processor["image_std"] == [0.5, 0.5, 0.5]
    assert processor["ignore_id"] == -100 and processor["pad_token"] == "<｜▁pad▁｜>"


def test_remote_code_imports_removed_llama_classes_at_module_level(v1_model):
    source = (v1_model / "modeling_deepseekocr.py").read_text(encoding="utf-8")
    assert "from transformers.models.llama.modeling_llama import LlamaFlashAttention2" in source
    assert "from transformers.utils.import_utils import is_torch_fx_available" in source
    assert ".cuda()" not in source


def test_cuda_calls_adds_the_bare_cuda_call(tmp_path):
    folder = write_v1_standin(tmp_path / "DeepSeek-OCR-cuda", cuda_calls=True)
    assert "images_seq_mask[idx].unsqueeze(-1).cuda()" in (folder / "modeling_deepseekocr.py").read_text(encoding="utf-8")


def test_tokenizer_has_the_checkpoint_special_tokens_at_ids_of_its_own(v1_model, tokenizer):
    assert tokenizer.bos_token == "<｜begin▁of▁sentence｜>" and tokenizer.bos_token_id == 0
    assert tokenizer.eos_token == "<｜end▁of▁sentence｜>" and tokenizer.eos_token_id == 1
    assert tokenizer.pad_token == "<｜▁pad▁｜>" and tokenizer.pad_token_id == 2
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert image_id != 128815 and 100 < image_id < len(tokenizer) <= 1000
    for token in ("<image>", "<|grounding|>", "<|User|>", "<|Assistant|>"):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
    text = "Привет мир, Free OCR."
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    assert _json(v1_model, "config.json")["vocab_size"] >= len(tokenizer)


def test_writing_is_deterministic(tmp_path, v1_model):
    again = write_v1_standin(tmp_path / "again")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "modeling_deepseekocr.py"):
        assert (again / name).read_bytes() == (v1_model / name).read_bytes(), name


# ---------------------------------------------------------------- transformers >= 4.48 / 5.x


@new_only
def test_new_transformers_fails_to_import_it_like_the_checkpoint(v1_model):
    from transformers import AutoConfig

    with pytest.raises(ImportError, match="LlamaFlashAttention2"):
        AutoConfig.from_pretrained(str(v1_model), trust_remote_code=True)


@new_only
def test_weights_need_a_stack_that_imports_the_code(tmp_path):
    with pytest.raises(StandinUnavailable, match=r"transformers<=4\.47\.1"):
        write_v1_standin(tmp_path / "DeepSeek-OCR", weights=True)


# ---------------------------------------------------------------- transformers <= 4.47 (legacy stack)


@legacy_only
def test_automodel_loads_it_with_the_real_forward_signature(model):
    assert type(model).__name__ == "DeepseekOCRForCausalLM"
    assert type(model.config).__name__ == "DeepseekOCRConfig"
    assert list(inspect.signature(model.forward).parameters) == FORWARD_PARAMS
    assert not model.config.is_encoder_decoder


@legacy_only
@pytest.mark.parametrize("auto_class", ["AutoModelForVision2Seq", "AutoModelForCausalLM", "AutoModelForImageTextToText"])
def test_other_auto_classes_refuse_it(v1_model, auto_class):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(v1_model), trust_remote_code=True)
    with pytest.raises(ValueError, match="Unrecognized configuration class .*DeepseekOCRConfig"):
        getattr(transformers, auto_class).from_config(config, trust_remote_code=True)


def test_auto_processor_is_the_bare_tokenizer(v1_model):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(v1_model), trust_remote_code=False)
    assert isinstance(processor, transformers.PreTrainedTokenizerBase)
    assert not hasattr(processor, "image_processor")
    call = lambda: processor(images=[Image.new("RGB", (8, 8))], text=["<image>\nFree OCR. "])  # noqa: E731
    if REMOTE_CODE_LOADS:
        assert type(processor).__name__ == "LlamaTokenizerFast"
        with pytest.raises(TypeError, match="unexpected keyword argument 'images'"):
            call()
    else:
        # transformers 5.x: the tokenizer swallows the images without a word.
        assert set(call()) == {"input_ids", "attention_mask"}


@new_only
def test_new_transformers_auto_processor_with_trusted_code_finds_nothing(v1_model):
    from transformers import AutoProcessor

    with pytest.raises(ValueError, match="Unrecognized processing class"):
        AutoProcessor.from_pretrained(str(v1_model), trust_remote_code=True)


@legacy_only
def test_module_names_are_the_checkpoint_lora_targets(model):
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"} <= linear
    assert {"qkv", "proj", "lin1", "lin2", "qkv_proj", "out_proj", "fc1", "fc2", "layers"} <= linear
    router = dict(model.named_modules())["model.layers.1.mlp.gate"]
    assert not isinstance(router, torch.nn.Linear) and router.weight.dim() == 2


@legacy_only
def test_forward_with_labels_trains_only_the_language_model(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**_copy(batch)).loss
    assert torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    vision = {n for n, _ in model.named_parameters() if n.split(".")[1] in ("sam_model", "vision_model", "projector")}
    assert vision and vision <= no_grad  # the vision path runs under no_grad
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.experts.0.up_proj.weight", "lm_head.weight"):
        assert name not in no_grad and model.get_parameter(name).grad.abs().sum() > 0, name
    model.zero_grad(set_to_none=True)


@legacy_only
def test_weights_are_saved_with_a_fixed_seed(tmp_path):
    from transformers import AutoModel

    first = write_v1_standin(tmp_path / "a" / "DeepSeek-OCR", weights=True, seed=3)
    second = write_v1_standin(tmp_path / "b" / "DeepSeek-OCR", weights=True, seed=3)
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    assert (first / "config.json").read_bytes() == (second / "config.json").read_bytes()
    loaded = AutoModel.from_pretrained(str(first), trust_remote_code=True)
    assert type(loaded).__name__ == "DeepseekOCRForCausalLM"


# ---------------------------------------------------------------- the reference's "mistakes" list


@legacy_only
@pytest.mark.parametrize("mistake", ["too few image slots", "labels on image slots", "no bos"])
def test_mistakes_the_real_model_accepts_silently(model, batch, mistake):
    bad = _copy(batch)
    mask = bad["images_seq_mask"]
    if mistake == "too few image slots":
        assert mask[0].sum() == 73
        rows = mask[0].nonzero().squeeze(-1)[64:]  # 64 instead of 73: no newline/separator slots
        mask[0, rows] = False
    elif mistake == "labels on image slots":
        bad["labels"][mask] = bad["input_ids"][mask]
    else:
        for key in ("input_ids", "attention_mask", "labels", "images_seq_mask"):
            bad[key] = bad[key][:, 1:]
    with torch.no_grad():
        assert torch.isfinite(model(**bad).loss)


@legacy_only
@pytest.mark.parametrize(
    "mistake, error, message",
    [
        ("one image slot too many", RuntimeError, "Number of elements of source < number of ones in mask"),
        ("int mask", RuntimeError, "masked_scatter_ only supports boolean masks"),
        ("images not pairs", IndexError, None),
        ("bf16 pixels into fp32", RuntimeError, r"Input type \(c10::BFloat16\) and bias type \(float\) should be the same"),
        ("no images key", TypeError, "'NoneType' object is not subscriptable"),
    ],
)
def test_mistakes_that_fail_loudly(model, batch, mistake, error, message):
    bad = _copy(batch)
    if mistake == "one image slot too many":
        after_last = bad["images_seq_mask"][0].nonzero().max() + 1
        bad["images_seq_mask"][0, after_last] = True
    elif mistake == "int mask":
        bad["images_seq_mask"] = bad["images_seq_mask"].long()
    elif mistake == "images not pairs":
        bad["images"] = [view for _, view in bad["images"]]
    elif mistake == "bf16 pixels into fp32":
        bad["images"] = [(p.bfloat16(), v.bfloat16()) for p, v in bad["images"]]
    else:
        del bad["images"]
    with torch.no_grad(), pytest.raises(error, match=message):
        model(**bad)


@legacy_only
def test_first_sample_without_image_skips_the_vision_path_for_the_batch(model, batch):
    def image_slots_keep_token_embeddings(b) -> bool:
        with torch.no_grad():
            written = model(**b, output_hidden_states=True).hidden_states[0]
            plain = model.get_input_embeddings()(b["input_ids"])
        slots = b["images_seq_mask"][1]
        return torch.equal(written[1][slots], plain[1][slots])

    assert not image_slots_keep_token_embeddings(_copy(batch))
    first_blank = _copy(batch)
    first_blank["images"][0] = tuple(torch.zeros_like(t) for t in first_blank["images"][0])
    assert image_slots_keep_token_embeddings(first_blank)


@legacy_only
def test_seq2seq_lora_passes_decoder_input_ids(model, batch):
    from peft import LoraConfig, TaskType, get_peft_model

    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, target_modules=["q_proj"], r=2))
    with torch.no_grad(), pytest.raises(TypeError, match="unexpected keyword argument 'decoder_input_ids'"):
        wrapped(**_copy(batch))


@legacy_only
def test_lora_on_vision_modules_never_learns(model, batch):
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, target_modules=["q_proj", "qkv"], r=2, init_lora_weights=False)
    wrapped = get_peft_model(copy.deepcopy(model), config)
    wrapped(**_copy(batch)).loss.backward()
    grads = {n: p.grad for n, p in wrapped.named_parameters() if "lora_" in n}
    language = [g for n, g in grads.items() if "self_attn.q_proj" in n]
    vision = [g for n, g in grads.items() if "sam_model" in n]
    assert language and all(g is not None and g.abs().sum() > 0 for g in language)
    assert vision and all(g is None for g in vision)


@legacy_only
def test_published_cuda_call_breaks_a_cpu_forward(tmp_path, batch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the .cuda() call succeeds here")
    from transformers import AutoConfig, AutoModel

    folder = write_v1_standin(tmp_path / "DeepSeek-OCR-cuda", cuda_calls=True)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    model = AutoModel.from_config(config, trust_remote_code=True)
    with torch.no_grad(), pytest.raises((AssertionError, RuntimeError), match="CUDA|cuda"):
        model(**_copy(batch))
