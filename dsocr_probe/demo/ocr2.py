"""A tiny random-weight DeepSeek-OCR-2 checkpoint, built offline from the native transformers classes.

The real model sees a 1024 px global view (256 visual tokens) and 768 px local tiles (144 tokens
each): SAM patches of 16 px, then 4x downsampling. The vision tower's learned queries fix those
two counts (144 for up to 12x12 SAM patches, 256 above), so the tiny one keeps them and scales
the pixels down 8x instead: 128 px global, 96 px tiles, SAM patches of 2 px. The processor then
expands ``<image>`` into exactly as many slots as the model produces features.
"""

from __future__ import annotations

import math
from pathlib import Path

SEED = 0
GLOBAL_SIZE = 128  # real: 1024
TILE_SIZE = 96  # real: 768
SAM_PATCH = 2  # real: 16
DOWNSAMPLE = 4  # two stride-2 convolutions after SAM, as in the real model
VOCAB_MULTIPLE = 64  # the embedding table is padded past the tokenizer, as in the checkpoint

SAM = {
    "hidden_size": 16,
    "output_channels": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": GLOBAL_SIZE,
    "patch_size": SAM_PATCH,
    # Windowed attention only: a global layer would attend over 64x64 patches.
    "window_size": 8,
    "global_attn_indexes": [],
    "mlp_dim": 32,
    "downsample_channels": [16, 16],
}
ENCODER = {
    "vocab_size": 8,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 512,
}
TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "moe_intermediate_size": 16,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "mlp_layer_types": ["dense", "sparse"],  # first layer dense, then MoE, like the checkpoint
    "max_position_embeddings": 2048,
}


def slots_per_view(size: int, patch_size: int = SAM_PATCH, downsample: int = DOWNSAMPLE) -> int:
    """Visual tokens of one square view, by the processor's rule."""
    side = math.ceil(size / patch_size / downsample)
    return side * side


def build_tokenizer():
    """The stand-in's DeepSeek-style byte-level BPE, wrapped so that it puts bos first like the checkpoint's."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from .standin.tokenizer import BOS, EOS, PAD, build_tokenizer as build_bpe

    tok = build_bpe()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="right",
        model_max_length=TEXT["max_position_embeddings"],
        model_input_names=["input_ids", "attention_mask"],
    )


def build_processor(tokenizer):
    import transformers

    # The PIL backend needs no torchvision; AutoImageProcessor picks a backend again on load.
    image_cls = getattr(transformers, "DeepseekOcr2ImageProcessorPil", None) or transformers.DeepseekOcr2ImageProcessor
    images = image_cls(size={"height": GLOBAL_SIZE, "width": GLOBAL_SIZE}, tile_size=TILE_SIZE)
    return transformers.DeepseekOcr2Processor(
        image_processor=images, tokenizer=tokenizer, patch_size=SAM_PATCH, downsample_ratio=DOWNSAMPLE
    )


def build_config(tokenizer):
    from transformers import DeepseekOcr2Config

    vocab = -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    text = dict(
        TEXT,
        vocab_size=vocab,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return DeepseekOcr2Config(
        vision_config={"sam_config": SAM, "encoder_config": ENCODER},
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )


def write_tiny_ocr2(folder: Path, seed: int = SEED) -> Path:
    """Save config, safetensors weights, tokenizer and processor into ``folder``; return it."""
    import torch
    from transformers import DeepseekOcr2ForConditionalGeneration

    folder = Path(folder)
    tokenizer = build_tokenizer()
    config = build_config(tokenizer)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        model = DeepseekOcr2ForConditionalGeneration(config)
    model.save_pretrained(folder)  # safetensors
    build_processor(tokenizer).save_pretrained(folder)
    return folder
