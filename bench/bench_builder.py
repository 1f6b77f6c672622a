"""The DeepSeek-OCR-2 batch builder against the processor path, on the same pages, side by side.

Both sides turn the same examples (PNG paths) into a training batch at the released checkpoint's
image settings (1024 px global view, 768 px tiles, 16 px patches, 4x downsampling):

- processor path: ``DeepseekOCR2Collator(processor, fast=False)``: ``DeepseekOcr2Processor``
  (Pillow backend) makes pixels and prompt ids, the builder adds target, eos and labels;
- builder: ``DeepseekOCR2Collator(processor)``, which makes the same batch without calling it.

Each round times every batch on both sides, the order alternating between rounds so drift on a
shared machine hits both alike, and checks that the two batches are equal tensor for tensor.

    python bench/bench_builder.py [--batch 8] [--rounds 3] [--dtype float32]

Goal: ratio >= 1.5 with identical outputs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.5
# Scans as teams have them: A4 at 150 dpi, a few landscape and long pages, a few small ones.
PAGE_SIZES = [(1240, 1754)] * 10 + [(1754, 1240), (2480, 1000), (600, 800), (700, 500), (1240, 1754), (1000, 3000)]


def full_size_processor():
    import transformers

    from dsocr_probe.demo.ocr2 import build_tokenizer

    images = transformers.DeepseekOcr2ImageProcessorPil(size={"height": 1024, "width": 1024}, tile_size=768)
    return transformers.DeepseekOcr2Processor(image_processor=images, tokenizer=build_tokenizer(), patch_size=16, downsample_ratio=4)


def write_pages(folder: Path, seed: int = 0) -> list[dict]:
    """PNG pages of text-like lines, and one example per page."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    examples = []
    for i, (w, h) in enumerate(PAGE_SIZES):
        page = Image.new("RGB", (w, h), (250, 248, 240))
        draw = ImageDraw.Draw(page)
        for y in range(40, h - 40, 28):
            x = 60
            while x < w - 100:
                n = rng.randint(20, 90)
                draw.rectangle([x, y, x + n, y + 14], fill=(rng.randint(0, 60),) * 3)
                x += n + 12
        path = folder / f"page-{i:02d}.png"
        page.save(path)
        examples.append({"image": str(path), "text": f"Page {i}: " + "words on a scanned line " * 6})
    return examples


def timed(builder, batch):
    start = time.perf_counter()
    out = builder(batch)
    return time.perf_counter() - start, out


def same(a: dict, b: dict) -> bool:
    import torch

    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="pages per batch")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over all batches (the median is used)")
    parser.add_argument("--dtype", default="float32", help="pixel dtype (the model's): float32, bfloat16, float16")
    args = parser.parse_args(argv)
    import torch
    import transformers

    if not hasattr(transformers, "DeepseekOcr2ImageProcessorPil"):
        print(f"transformers {transformers.__version__} has no DeepSeek-OCR-2 Pillow image processor (needs >= 5.10.1)")
        return 2
    from dsocr_probe.collators import DeepseekOCR2Collator

    processor = full_size_processor()
    start = time.perf_counter()
    builder = DeepseekOCR2Collator(processor, dtype=args.dtype)
    made = time.perf_counter() - start
    via_processor = DeepseekOCR2Collator(processor, dtype=args.dtype, fast=False)
    if not builder.fast:
        print(f"the builder falls back to the processor here: {builder.fallback_reason}")
    with tempfile.TemporaryDirectory() as tmp:
        examples = write_pages(Path(tmp))
        batches = [examples[i:i + args.batch] for i in range(0, len(examples), args.batch)]
        identical = all(same(builder(b), via_processor(b)) for b in batches)  # also warms both up
        theirs, ours = [], []
        for r in range(args.rounds):
            for b in batches:
                sides = [(via_processor, theirs), (builder, ours)]
                for side, times in sides if r % 2 == 0 else reversed(sides):
                    elapsed, out = timed(side, b)
                    times.append(elapsed)
                    del out
        tiles = int(builder(batches[0][:1])["num_local_patches"][0])
    print(f"transformers {transformers.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{os.cpu_count()} CPUs")
    print(f"{len(examples)} pages ({len(batches)} batches of <= {args.batch}), e.g. {PAGE_SIZES[0][0]}x{PAGE_SIZES[0][1]} "
          f"-> 1 global view + {tiles} tiles; dtype {args.dtype}; {args.rounds} rounds")
    print(f"builder set-up (settings + probe page):  {made:.2f} s once")
    slow, fast = statistics.median(theirs), statistics.median(ours)
    print(f"processor path, per batch (median):      {slow:.3f} s")
    print(f"builder, per batch (median):             {fast:.3f} s   (pixels made by: {builder.describe()['pixels_made_by']})")
    print(f"ratio processor path / builder:          {slow / fast:.2f}x  (goal >= {GOAL}x)")
    print(f"identical outputs: {'yes' if identical else 'no'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
