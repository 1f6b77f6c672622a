"""The static probe suite on a full-size DeepSeek-OCR-2 config, against building that model with weights.

The suite reads config, class and signature from a meta-device instance, so it should cost a small
fraction of what loading the model costs. Both are measured here, side by side, in one run:

    python bench/bench_static.py [--repeat 3]

The model side builds DeepseekOcr2ForConditionalGeneration with random bf16 weights in memory
(about 6 GB of RAM at this size): a lower bound of what from_pretrained spends before reading the
checkpoint, so the printed ratio understates the real saving.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The published checkpoint's scale: a DeepSeek-V2-style 3B MoE language model (12 layers, 64 routed
# experts) behind SAM ViT-B and a Qwen2-0.5B-sized vision encoder, at 1024 px global / 768 px tiles.
TEXT = dict(
    vocab_size=129280, hidden_size=1280, intermediate_size=6848, moe_intermediate_size=896,
    num_hidden_layers=12, num_attention_heads=10, num_key_value_heads=10, n_routed_experts=64,
    num_experts_per_tok=6, n_shared_experts=2, mlp_layer_types=["dense"] + ["sparse"] * 11,
    max_position_embeddings=8192,
)
ENCODER = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, vocab_size=151936,
)
STATIC = ("environment", "cuda", "remote_code", "model_api", "processor", "train_config", "dataset", "batch")


def write_full_size(folder: Path) -> Path:
    import transformers

    from dsocr_probe.demo import ocr2 as demo_ocr2, pages as demo_pages

    tokenizer = demo_ocr2.build_tokenizer()
    config = transformers.DeepseekOcr2Config(
        vision_config={"encoder_config": ENCODER},
        text_config=dict(TEXT, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    config.architectures = ["DeepseekOcr2ForConditionalGeneration"]
    config.save_pretrained(folder)
    image_cls = getattr(transformers, "DeepseekOcr2ImageProcessorPil", None) or transformers.DeepseekOcr2ImageProcessor
    processor = transformers.DeepseekOcr2Processor(
        image_processor=image_cls(size={"height": 1024, "width": 1024}, tile_size=768),
        tokenizer=tokenizer, patch_size=16, downsample_ratio=4,
    )
    processor.save_pretrained(folder)
    demo_pages.write_dataset(folder / "dataset")
    return folder


def time_static(folder: Path) -> tuple[float, dict[str, str]]:
    from dsocr_probe.probes.context import Options, ProbeContext
    from dsocr_probe.plugin import run_probe
    from dsocr_probe.probes import PROBES

    ctx = ProbeContext(Options(model=str(folder), data=folder / "dataset"))
    start = time.perf_counter()
    statuses = {s.name: run_probe(s, ctx).status.value for s in PROBES if s.name in STATIC}
    return time.perf_counter() - start, statuses


def time_weights(folder: Path) -> float:
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = transformers.DeepseekOcr2ForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    elapsed = time.perf_counter() - start
    n = sum(p.numel() for p in model.parameters())
    print(f"  built {n / 1e9:.2f} B parameters with random weights")
    del model
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="static-suite runs (the median is used)")
    args = parser.parse_args()
    import transformers

    if not hasattr(transformers, "DeepseekOcr2Config"):
        print(f"transformers {transformers.__version__} has no native DeepSeek-OCR-2 (needs >= 5.10.1)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_full_size(Path(tmp) / "DeepSeek-OCR-2-full-size")
        runs = []
        for _ in range(args.repeat):
            elapsed, statuses = time_static(folder)
            runs.append(elapsed)
        static = statistics.median(runs)
        print(f"static suite ({len(statuses)} probes, median of {len(runs)}): {static:.2f} s  {statuses}")
        weights = time_weights(folder)
        print(f"model with random weights:                 {weights:.2f} s")
        print(f"ratio weights / static suite:               {weights / static:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
