"""Tiny random-weight checkpoints of the kin families, built offline: a tiny BPE tokenizer made with
`tokenizers`, image processors constructed in code, tiny native configs. Each builder saves the
model with its processor into a folder, as a real checkpoint is laid out."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

from packaging.version import Version

import torch
import transformers

SPECIALS = ["<pad>", "<s>", "</s>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<|image_pad|>",
            "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<img>", "</img>", "<imgpad>",
            "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<bos>", "<eos>", "<start_of_turn>",
            "<end_of_turn>", "<OCR>", "<end_of_utterance>", "<fake_token_around_image>", "<global-img>"]
VOCAB = 400
CORPUS = ["user assistant system Free OCR. ocr Meeting notes, shopping list, invoice, lecture, letter\n"
          "You should follow the instructions carefully and explain your answers in detail."] * 3
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def tokenizer(bos="<s>", eos="</s>", pad="<pad>", legacy_class: str | None = None, **extra):
    """transformers 4.x processors check the tokenizer's class (``legacy_class``); 5.x takes any fast one."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False,
                                  special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    cls = transformers.PreTrainedTokenizerFast
    if Version(transformers.__version__).major < 5:
        extra.pop("extra_special_tokens", None)  # 4.x processors add their image token attributes themselves
        cls = getattr(transformers, legacy_class) if legacy_class else cls
    return cls(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
               model_input_names=["input_ids", "attention_mask"], **extra)


def ids(tok) -> dict[str, int]:
    return {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}


def text(vocab: int, pad: int, **more) -> dict:
    return {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 2048,
            "pad_token_id": pad, "head_dim": 16, **more}


def _save(root: Path, model_cls, config, processor) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model_cls(config).save_pretrained(str(root))
    processor.save_pretrained(str(root))
    return root


def _pil(name: str):
    return getattr(transformers, name + "Pil", None) or getattr(transformers, name)


def qwen2_vl(root: Path, merge: int = 2, model_merge: int = 2):
    tok = tokenizer(bos=None, eos="<|im_end|>", pad="<|endoftext|>", legacy_class="Qwen2TokenizerFast")
    i = ids(tok)
    lm = text(VOCAB, i["<|endoftext|>"], rope_scaling={"type": "mrope", "mrope_section": [2, 2, 4]})
    config = transformers.Qwen2VLConfig(
        **({"text_config": lm} if Version(transformers.__version__).major >= 5 else {}),
        vision_config={"depth": 1, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "patch_size": 14,
                       "spatial_merge_size": model_merge, "temporal_patch_size": 2, "in_chans": 3},
        image_token_id=i["<|image_pad|>"], video_token_id=i["<|video_pad|>"],
        vision_start_token_id=i["<|vision_start|>"], vision_end_token_id=i["<|vision_end|>"], **lm)
    images = _pil("Qwen2VLImageProcessor")(min_pixels=28 * 28 * 4, max_pixels=56 * 56 * 4, merge_size=merge,
                                             patch_size=14, temporal_patch_size=2)
    if has_torchvision() or Version(transformers.__version__).major < 5:
        processor = transformers.Qwen2VLProcessor(image_processor=images, tokenizer=tok, chat_template=QWEN_TEMPLATE)
        return _save(root, transformers.Qwen2VLForConditionalGeneration, config, processor)
    # transformers 5.x cannot make this processor without torchvision (its video processor needs it):
    # lay its files out as a saved one would be, so loading it shows what a user without torchvision sees.
    _save(root, transformers.Qwen2VLForConditionalGeneration, config, tok)
    images.save_pretrained(str(root))
    settings = json.loads((root / "preprocessor_config.json").read_text())
    settings["processor_class"] = "Qwen2VLProcessor"
    (root / "preprocessor_config.json").write_text(json.dumps(settings))
    (root / "chat_template.jinja").write_text(QWEN_TEMPLATE)
    (root / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2VLProcessor"}))
    return root


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def got_ocr2(root: Path):
    tok = tokenizer(bos=None, eos="<|im_end|>", pad="<|endoftext|>")
    i = ids(tok)
    config = transformers.GotOcr2Config(
        # 128 px in 2 px patches: a 64 x 64 grid, downsampled 4x by the projector to GOT's 256 slots.
        vision_config={"hidden_size": 16, "output_channels": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 128, "patch_size": 2, "global_attn_indexes": [], "window_size": 8,
                       "mlp_dim": 32},
        text_config={"model_type": "qwen2", **text(VOCAB, i["<|endoftext|>"])},
        image_token_index=i["<imgpad>"])
    images = _pil("GotOcr2ImageProcessor")(size={"height": 128, "width": 128})
    processor = transformers.GotOcr2Processor(image_processor=images, tokenizer=tok)
    return _save(root, transformers.GotOcr2ForConditionalGeneration, config, processor)


def paligemma(root: Path):
    tok = tokenizer(bos="<bos>", eos="<eos>", pad="<pad>", legacy_class="GemmaTokenizerFast",
                    extra_special_tokens={"image_token": "<image>"})
    i = ids(tok)
    config = transformers.PaliGemmaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                       "projection_dim": 32},
        text_config={"model_type": "gemma", **text(VOCAB, i["<pad>"], num_image_tokens=16)},
        image_token_index=i["<image>"], projection_dim=32, hidden_size=32, pad_token_id=i["<pad>"])
    images = _pil("SiglipImageProcessor")(size={"height": 32, "width": 32}, image_seq_length=16)
    images.image_seq_length = 16
    processor = transformers.PaliGemmaProcessor(image_processor=images, tokenizer=tok)
    return _save(root, transformers.PaliGemmaForConditionalGeneration, config, processor)


def gemma3(root: Path, tokens_per_image: int = 4):
    tok = tokenizer(bos="<bos>", eos="<eos>", pad="<pad>",
                    extra_special_tokens={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                                          "eoi_token": "<end_of_image>"})
    i = ids(tok)
    config = transformers.Gemma3Config(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "gemma3_text", **text(VOCAB, i["<pad>"], sliding_window=64)},
        mm_tokens_per_image=4, image_token_index=i["<image_soft_token>"], boi_token_index=i["<start_of_image>"],
        eoi_token_index=i["<end_of_image>"])
    images = _pil("Gemma3ImageProcessor")(size={"height": 32, "width": 32})
    processor = transformers.Gemma3Processor(image_processor=images, tokenizer=tok, chat_template=GEMMA_TEMPLATE,
                                             image_seq_length=tokens_per_image)
    return _save(root, transformers.Gemma3ForConditionalGeneration, config, processor)


def lora_fields() -> set[str]:
    from dsocr_probe.model import lora

    return lora.config_fields()


def train_config(tmp: Path, folder: Path, pages: Path, task_type: str = "CAUSAL_LM", collator: str | None = None,
                 targets: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A training YAML for a tiny checkpoint: LoRA on the language model's attention, a batch of 2."""
    import yaml

    config = {
        "model": {"name": str(folder), "auto_class": "AutoModelForImageTextToText"},
        "lora": {"r": 4, "lora_alpha": 8, "target_modules": list(targets), "task_type": task_type,
                 # peft < 0.14 has no exclude_modules: there the vision tower's projections get adapters too
                 **({"exclude_modules": r"(.*\.)?(vision_tower|vision_model|visual|vision_encoder)\..*"}
                    if "exclude_modules" in lora_fields() else {})},
        "training": {"output_dir": str(tmp / "out"), "per_device_train_batch_size": 2, "learning_rate": 5e-3,
                     "optim": "adamw_torch", "remove_unused_columns": False, "dataloader_num_workers": 0,
                     "logging_steps": 1, "save_strategy": "no", "report_to": "none", "num_train_epochs": 1},
        "data": {"train_dir": str(pages / "train"), "val_dir": str(pages / "val"),
                 **({"collator": collator} if collator else {})},
    }
    path = tmp / "training_config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


FLORENCE_SLOTS = 17  # 32 px: a 4 x 4 grid after the two stages, plus the pooled token


def florence2(root: Path):
    tok = tokenizer(bos="<s>", eos="</s>", pad="<pad>", extra_special_tokens={"image_token": "<image>"})
    i = ids(tok)
    config = transformers.Florence2Config(
        text_config={"model_type": "bart", "vocab_size": VOCAB, "d_model": 32, "encoder_layers": 1, "decoder_layers": 1,
                     "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
                     "decoder_ffn_dim": 64, "max_position_embeddings": 256, "dropout": 0.0, "attention_dropout": 0.0, "pad_token_id": i["<pad>"],
                     "bos_token_id": i["<s>"], "eos_token_id": i["</s>"], "decoder_start_token_id": i["</s>"]},
        vision_config={"depths": [1, 1], "patch_size": [7, 3], "patch_stride": [4, 2], "patch_padding": [3, 1],
                       "patch_prenorm": [False, True], "embed_dim": [16, 32], "num_heads": [2, 2], "num_groups": [2, 2],
                       "window_size": 2, "projection_dim": 32, "drop_path_rate": 0.0},
        image_token_id=i["<image>"])
    images = _pil("CLIPImageProcessor")(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32},
                                        do_center_crop=False)
    images.image_seq_length = FLORENCE_SLOTS
    processor = transformers.Florence2Processor(image_processor=images, tokenizer=tok)
    return _save(root, transformers.Florence2ForConditionalGeneration, config, processor)


IDEFICS_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def idefics3(root: Path):
    tok = tokenizer(bos="<|im_start|>", eos="<end_of_utterance>", pad="<|endoftext|>")
    i = ids(tok)
    config = transformers.Idefics3Config(
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", **text(VOCAB, i["<|endoftext|>"], bos_token_id=i["<|im_start|>"],
                                                   eos_token_id=i["<end_of_utterance>"])},
        scale_factor=2, image_token_id=i["<image>"], pad_token_id=i["<|endoftext|>"])
    images = _pil("Idefics3ImageProcessor")(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    processor = transformers.Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                                               chat_template=IDEFICS_TEMPLATE)
    return _save(root, transformers.Idefics3ForConditionalGeneration, config, processor)


def llava(root: Path):
    tok = tokenizer(bos="<s>", eos="</s>", pad="<pad>")
    i = ids(tok)
    config = transformers.LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", **text(VOCAB, i["<pad>"])},
        image_token_index=i["<image>"], image_seq_length=16, vision_feature_layer=-1,
        vision_feature_select_strategy="default", pad_token_id=i["<pad>"])
    images = _pil("CLIPImageProcessor")(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    extra = {"num_additional_image_tokens": 1} if "num_additional_image_tokens" in inspect.signature(
        transformers.LlavaProcessor.__init__).parameters else {}
    processor = transformers.LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=8,
                                            vision_feature_select_strategy="default", image_token="<image>", **extra)
    return _save(root, transformers.LlavaForConditionalGeneration, config, processor)


def qwen_vl_files(root: Path, config_class: str, image_processor: str, processor_class: str) -> Path:
    """A Qwen-VL checkpoint's config, tokenizer and processor files without weights: enough for what a
    machine without torchvision sees before anything loads (its processor needs torchvision)."""
    tok = tokenizer(bos=None, eos="<|im_end|>", pad="<|endoftext|>", legacy_class="Qwen2TokenizerFast")
    i = ids(tok)
    root.mkdir(parents=True, exist_ok=True)
    config = getattr(transformers, config_class)(image_token_id=i["<|image_pad|>"], video_token_id=i["<|video_pad|>"])
    config.save_pretrained(str(root))
    tok.save_pretrained(str(root))
    settings = {"image_processor_type": image_processor, "processor_class": processor_class, "merge_size": 2,
                "patch_size": 16 if "3" in config_class else 14, "temporal_patch_size": 2}
    (root / "preprocessor_config.json").write_text(json.dumps(settings))
    (root / "processor_config.json").write_text(json.dumps({"processor_class": processor_class}))
    (root / "chat_template.jinja").write_text(QWEN_TEMPLATE)
    return root


def llava_next(root: Path):
    tok = tokenizer(bos="<s>", eos="</s>", pad="<pad>")
    i = ids(tok)
    grid = [[32, 32], [32, 64], [64, 32]]
    config = transformers.LlavaNextConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", **text(VOCAB, i["<pad>"])},
        # image_seq_length below the real slot count: 4.x would otherwise expand the tokens itself ("legacy").
        image_token_index=i["<image>"], image_grid_pinpoints=grid, vision_feature_layer=-1, image_seq_length=16,
        vision_feature_select_strategy="default", pad_token_id=i["<pad>"])
    images = _pil("LlavaNextImageProcessor")(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                             image_grid_pinpoints=grid)
    extra = {"num_additional_image_tokens": 1} if "num_additional_image_tokens" in inspect.signature(
        transformers.LlavaNextProcessor.__init__).parameters else {}
    processor = transformers.LlavaNextProcessor(image_processor=images, tokenizer=tok, patch_size=8,
                                                vision_feature_select_strategy="default", image_token="<image>",
                                                **extra)
    return _save(root, transformers.LlavaNextForConditionalGeneration, config, processor)
