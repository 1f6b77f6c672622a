"""Write the DeepSeek-OCR v1 stand-in: a checkpoint folder shaped like the published one, but tiny.

Like the real checkpoint it needs ``trust_remote_code``, maps only AutoConfig and AutoModel,
names a processor class nobody ships (so AutoProcessor gives back the tokenizer), and its
remote code imports ``LlamaFlashAttention2`` at module level, so it loads on transformers
<= 4.47.1 and fails with an ImportError on newer releases.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .tokenizer import BOS, EOS, write_tokenizer

FILES = Path(__file__).parent / "files"
MODELING = "modeling_deepseekocr.py"
WEIGHTS = "model.safetensors"
# The published forward moves the image mask to the GPU with a bare .cuda() on this expression.
MASK_EXPR = "images_seq_mask[idx].unsqueeze(-1)"

# Tiny dimensions; the names and the structure follow the published config.json.
LANGUAGE = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "moe_intermediate_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_shared_experts": 1,
    "first_k_dense_replace": 1,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "initializer_range": 0.02,
}
VISION = {
    "model_name": "tiny_sam_clip",
    "model_type": "vision",
    "patch_size": 16,
    "sam": {"width": 16, "heads": 2, "layers": 1, "window_size": 8, "downsample_channels": [16, 32]},
    "clip": {"width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2},
}
PROJECTOR = {"model_type": "mlp_projector", "projector_type": "linear", "input_dim": 64, "n_embed": 32}


class StandinUnavailable(RuntimeError):
    """The installed transformers cannot import the stand-in's remote code (as with the real one)."""


def write_v1_standin(folder: Path, *, weights: bool = False, seed: int = 0, cuda_calls: bool = False,
                     routed_experts: tuple[int, int] | None = None) -> Path:
    """Write the stand-in into ``folder`` (created if missing) and return it.

    weights: also save random weights (model.safetensors) drawn with ``seed``; needs a
        transformers that can import the remote code (<= 4.47.1).
    cuda_calls: keep the published code's bare ``.cuda()`` in forward (for the remote-code
        scan); off by default so the model runs on a CPU.
    routed_experts: (routed experts, experts per token) instead of the small default (4, 2); the
        checkpoint's (64, 6) routes a small batch to only some experts.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = write_tokenizer(folder)
    config = _config(ids)
    if routed_experts is not None:
        config["n_routed_experts"], config["num_experts_per_tok"] = routed_experts
    _dump(folder / "config.json", config)
    generation = {"_from_model_config": True, "bos_token_id": ids[BOS], "eos_token_id": ids[EOS], "transformers_version": "4.46.3"}
    _dump(folder / "generation_config.json", generation)
    shutil.copyfile(FILES / "processor_config.json", folder / "processor_config.json")
    (folder / MODELING).write_text(_modeling_source(cuda_calls), encoding="utf-8")
    if weights:
        _save_weights(folder, seed)
    else:
        (folder / WEIGHTS).unlink(missing_ok=True)  # never leave weights from an earlier call behind
    return folder


def _config(ids: dict[str, int]) -> dict:
    # Like the checkpoint, the embedding table is larger than the tokenizer.
    vocab_size = -(-(ids["size"] + 1) // 64) * 64
    return {
        "architectures": ["DeepseekOCRForCausalLM"],
        "auto_map": {
            "AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
            "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM",
        },
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head",
        "tile_tag": "2D",
        "lm_head": True,
        **LANGUAGE,
        "model_type": "DeepseekOCR",
        "projector_config": PROJECTOR,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.46.3",
        "use_cache": True,
        "vision_config": VISION,
        "vocab_size": vocab_size,
    }


def _modeling_source(cuda_calls: bool) -> str:
    source = (FILES / MODELING).read_text(encoding="utf-8")
    if cuda_calls:
        if source.count(MASK_EXPR) != 1:
            raise RuntimeError(f"{MODELING}: expected `{MASK_EXPR}` exactly once to add the .cuda() call")
        source = source.replace(MASK_EXPR, MASK_EXPR + ".cuda()")
    return source


def _save_weights(folder: Path, seed: int) -> None:
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    except ImportError as exc:
        raise StandinUnavailable(
            f"cannot build the v1 stand-in's weights with transformers {transformers.__version__}: its remote code "
            f"fails to import ({exc}). Build them where transformers<=4.47.1 is installed (e.g. 4.46.3)."
        ) from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config, trust_remote_code=True)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        # Only the weights: save_pretrained would rewrite config.json in its own words.
        shutil.move(str(Path(tmp) / WEIGHTS), str(folder / WEIGHTS))


def _dump(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
