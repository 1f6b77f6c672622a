"""Batch builder for the native DeepSeek-OCR-2 (transformers >= 5.10.1).

``DeepseekOcr2Processor`` makes the pixels (a padded global view per page, plus local tiles
when the page is larger than one tile) and writes each ``<image>`` as one run of slots:
``global + local x tiles + 1`` (the 1 is the view separator). This builder takes the
processor's output for the prompt as it is, appends the target's tokens and eos, and adds
labels with the rules of DeepSeek-OCR v1 training: the target and eos are supervised; bos,
the prompt, every image slot and padding are -100.

    processor = AutoProcessor.from_pretrained(path)
    builder = DeepseekOCR2Collator(processor, max_length=1024, dtype=model.dtype)
    Trainer(model=model, data_collator=builder, ...)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .processor import ProcessorCollator, Row, attention_mask, real_ids

DEFAULT_PROMPT = "<image>\nFree OCR. "


class DeepseekOCR2Collator(ProcessorCollator):
    """``input_ids``, ``attention_mask``, ``pixel_values``, ``num_local_patches``,
    ``pixel_values_local`` (only when some page has tiles) and ``labels``."""

    family = "deepseek-ocr-2"

    def __init__(self, processor: Any, *, prompt: str = DEFAULT_PROMPT, max_length: int | None = None, dtype: Any = "float32"):
        needed = ("patch_size", "downsample_ratio", "image_processor")
        missing = [name for name in needed if getattr(processor, name, None) is None]
        if missing:
            raise TypeError(
                f"{type(processor).__name__} is not a DeepseekOcr2Processor (it lacks {', '.join(missing)}); "
                "load it with AutoProcessor.from_pretrained on a DeepSeek-OCR-2 checkpoint (transformers >= 5.10.1). "
                "For DeepSeek-OCR v1 use DeepseekOCRCollator."
            )
        super().__init__(processor, prompt=prompt, max_length=max_length, dtype=dtype)

    def images_argument(self, images: list[Any]) -> list[Any]:
        return list(images)  # the processor's documented form: a flat list, one page per text

    def encode(self, rows: list[Row]) -> tuple[dict[str, Any], list[int]]:
        # As in the official v1 layout, the prompt and the target are tokenised apart: the model
        # then learns the target as it will generate it after the prompt at inference, and no
        # token straddles the boundary (a trailing space of the prompt stays in the prompt).
        prompts = self._process(rows, [row.prompt for row in rows])
        tok = self.tokenizer
        prompt_ids = [real_ids(prompts, i) for i in range(len(rows))]
        sequences = [
            ids + tok(row.text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            for ids, row in zip(prompt_ids, rows)
        ]
        padded = tok.pad({"input_ids": sequences}, padding=True, return_tensors="pt")
        batch = {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}
        lengths = [len(ids) for ids in prompt_ids]
        for key, value in prompts.items():
            if key not in batch:
                per_token = getattr(value, "shape", None) == prompts["input_ids"].shape
                batch[key] = _extend_per_token(value, prompts, batch, lengths) if per_token else value
        return batch, lengths

    # -- the processor's slot rule ----------------------------------------------------------

    @property
    def global_size(self) -> int:
        return _height(self.processor.image_processor.size)

    @property
    def tile_size(self) -> int:
        return int(self.processor.image_processor.tile_size)

    def slots_per_view(self, size: int) -> int:
        side = math.ceil(size / self.processor.patch_size / self.processor.downsample_ratio)
        return side * side

    def expected_slots(self, tiles: int) -> int:
        """Image slots for one page cut into ``tiles`` local tiles: global view, tiles, separator."""
        return self.slots_per_view(self.global_size) + self.slots_per_view(self.tile_size) * tiles + 1

    def describe(self) -> dict[str, Any]:
        images = self.processor.image_processor
        return {
            **super().describe(),
            "global_size": self.global_size,
            "tile_size": self.tile_size,
            "global_slots": self.slots_per_view(self.global_size),
            "slots_per_tile": self.slots_per_view(self.tile_size),
            "crop_to_patches": getattr(images, "crop_to_patches", None),
        }

    def validate(self, batch: Mapping[str, Any]) -> list[str]:
        problems = super().validate(batch)
        ids, tiles = batch.get("input_ids"), batch.get("num_local_patches")
        if ids is None:
            return problems
        if tiles is None:
            return problems + ["no 'num_local_patches': the model cannot split the local tiles per page"]
        tiles = [int(t) for t in tiles]
        if len(tiles) != ids.shape[0]:
            problems.append(f"'num_local_patches' has {len(tiles)} entries for {ids.shape[0]} samples")
            return problems
        slots = (ids == self.image_token_id).sum(dim=-1).tolist()
        for i, (have, n) in enumerate(zip(slots, tiles)):
            want = self.expected_slots(n)
            if have != want:
                problems.append(
                    f"sample {i} has {have} image slots; a page with {n} tile(s) needs {want} "
                    f"({self.slots_per_view(self.global_size)} global + {self.slots_per_view(self.tile_size)} x {n} + 1)"
                )
        pixels, local = batch.get("pixel_values"), batch.get("pixel_values_local")
        if pixels is not None and pixels.shape[0] != len(tiles):
            problems.append(f"'pixel_values' holds {pixels.shape[0]} global views for {len(tiles)} samples")
        have_local = 0 if local is None else local.shape[0]
        if have_local != sum(tiles):
            problems.append(f"'pixel_values_local' holds {have_local} tiles but 'num_local_patches' counts {sum(tiles)}")
        return problems


def _extend_per_token(value, prompts: Mapping[str, Any], batch: Mapping[str, Any], lengths: list[int]):
    """A per-token tensor of the prompt (e.g. token types) laid over the longer sequences; the
    target's positions get 0, the text type."""
    import torch

    out = torch.zeros_like(batch["input_ids"], dtype=value.dtype)
    for i, n in enumerate(lengths):
        source = value[i][attention_mask(prompts)[i].bool()]
        out[i, batch["attention_mask"][i].nonzero().flatten()[:n]] = source
    return out


def _height(size: Any) -> int:
    value = size.get("height") if isinstance(size, Mapping) else getattr(size, "height", None)
    if value is None:
        raise TypeError(f"image processor size {size!r} has no height")
    return int(value)
