"""Batch builder for the native DeepSeek-OCR-2 (transformers >= 5.10.1).

``DeepseekOcr2Processor`` makes the pixels (a padded global view per page, plus local tiles
when the page is larger than one tile) and writes each ``<image>`` as one run of slots:
``global + local x tiles + 1`` (the 1 is the view separator). This builder hands the model the
processor's output for the prompt, appends the target's tokens and eos, and adds labels with
the rules of DeepSeek-OCR v1 training: the target and eos are supervised; bos, the prompt,
every image slot and padding are -100.

For the processor's Pillow backend the builder makes that output itself, equal bit for bit
and a few times faster (deepseek_ocr2_images.py): settings are read from the processor once,
each prompt is tokenised once per tile count, and pixels go straight into the batch tensor in
the model's dtype. Before it relies on that path it checks it against the processor on a probe
page; with settings it does not cover, or ``fast=False``, every batch goes through the processor.

    processor = AutoProcessor.from_pretrained(path)
    builder = DeepseekOCR2Collator(processor, max_length=1024, dtype=model.dtype)
    Trainer(model=model, data_collator=builder, ...)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .base import BadExample, Problem, problem
from .deepseek_ocr2_images import PageTooThin, PageViews, Unsupported, ViewSettings, effective_setting
from .processor import ProcessorCollator, Row, attention_mask, real_ids

DEFAULT_PROMPT = "<image>\nFree OCR. "
PROMPT_CACHE_SIZE = 256  # (prompt, tile count) pairs; a dataset has few prompts and at most max_patches + 1 counts
# Processor options that add outputs the builder does not make.
EXTRA_OUTPUTS = ("return_mm_token_type_ids", "return_text_replacement_offsets")


class DeepseekOCR2Collator(ProcessorCollator):
    """``input_ids``, ``attention_mask``, ``pixel_values``, ``num_local_patches``,
    ``pixel_values_local`` (only when some page has tiles) and ``labels``.

    fast: make pixels and prompt ids without calling the processor (equal output); the builder
        still falls back to the processor when its settings are not covered, and says why in
        ``fallback_reason`` and ``describe()``.
    """

    family = "deepseek-ocr-2"
    images_layout = "flat"  # the processor's documented form: one page per text

    def __init__(
        self,
        processor: Any,
        *,
        prompt: str = DEFAULT_PROMPT,
        max_length: int | None = None,
        dtype: Any = "float32",
        fast: bool = True,
    ):
        needed = ("patch_size", "downsample_ratio", "image_processor")
        missing = [name for name in needed if getattr(processor, name, None) is None]
        if missing:
            raise TypeError(
                f"{type(processor).__name__} is not a DeepseekOcr2Processor (it lacks {', '.join(missing)}); "
                "load it with AutoProcessor.from_pretrained on a DeepSeek-OCR-2 checkpoint (transformers >= 5.10.1). "
                "For DeepSeek-OCR v1 use DeepseekOCRCollator."
            )
        super().__init__(processor, prompt=prompt, max_length=max_length, dtype=dtype)
        self._prompt_ids: dict[tuple[str, int], list[int]] = {}
        self.views: PageViews | None = None
        self.fallback_reason: str | None = "fast=False" if not fast else None
        if fast:
            self._use_own_views()

    # -- choosing the path ----------------------------------------------------------------

    @property
    def fast(self) -> bool:
        """True when batches are made without calling the processor."""
        return self.views is not None

    def _use_own_views(self) -> None:
        try:
            self._check_covered()
            self.views = PageViews(ViewSettings.of(self.processor), self.dtype)
        except Unsupported as exc:
            self.fallback_reason = str(exc)
            return
        differs = self._probe_difference()
        if differs:
            self.views = None
            self.fallback_reason = differs

    def _check_covered(self) -> None:
        import transformers

        known = getattr(transformers, "DeepseekOcr2Processor", None)
        if known is None or type(self.processor) is not known:
            # A subclass or wrapper may change what a call returns; only the processor itself is reproduced.
            raise Unsupported(f"the processor is {type(self.processor).__name__}, not DeepseekOcr2Processor itself")
        extras = [name for name in EXTRA_OUTPUTS if getattr(self.processor, name, False)]
        if extras:
            raise Unsupported(f"the processor is set to add outputs ({', '.join(extras)})")

    def _probe_difference(self) -> str | None:
        """Why the own path differs from the processor on a probe page, or None when it does not:
        ids, slot count, tile grid and cut, global resize, pad colour and pixel values."""
        import torch

        rows = [Row(0, None, _probe_page(self.views.settings.tile_size), self.prompt, "probe")]
        try:
            own, own_lengths = self.encode(rows)
            theirs, their_lengths = self._encode_with_processor(rows)
        except Exception as exc:  # the processor rejects what the own path accepts, or the reverse
            return f"the probe page failed: {type(exc).__name__}: {exc}"
        theirs = self._cast_pixels(theirs)
        if set(own) != set(theirs):
            return f"the outputs differ in keys: {sorted(own)} vs the processor's {sorted(theirs)}"
        for key in theirs:
            if not torch.equal(own[key], theirs[key]):
                return f"'{key}' differs from the processor's on a probe page"
        if own_lengths != their_lengths:
            return "the prompt lengths differ from the processor's on a probe page"
        return None

    # -- building -------------------------------------------------------------------------

    def encode(self, rows: list[Row]) -> tuple[dict[str, Any], list[int]]:
        if self.views is None:
            return self._encode_with_processor(rows)
        plans = [self._plan(row) for row in rows]
        pixels = self.views([row.image for row in rows], plans)
        prompt_ids = [self._expanded_prompt_ids(row.prompt, plan.tiles) for row, plan in zip(rows, plans)]
        return self._join(rows, prompt_ids, pixels)

    def _encode_with_processor(self, rows: list[Row]) -> tuple[dict[str, Any], list[int]]:
        prompts = self._process(rows, [row.prompt for row in rows])
        prompt_ids = [real_ids(prompts, i) for i in range(len(rows))]
        extras = {key: value for key, value in prompts.items() if key not in ("input_ids", "attention_mask")}
        batch, lengths = self._join(rows, prompt_ids, extras)
        for key, value in extras.items():
            if getattr(value, "shape", None) == prompts["input_ids"].shape:
                batch[key] = _extend_per_token(value, prompts, batch, lengths)
        return batch, lengths

    def _join(self, rows: list[Row], prompt_ids: list[list[int]], extras: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        # As in the official v1 layout, the prompt and the target are tokenised apart: the model
        # then learns the target as it will generate it after the prompt at inference, and no
        # token straddles the boundary (a trailing space of the prompt stays in the prompt).
        tok = self.tokenizer
        targets = tok([row.text for row in rows], add_special_tokens=False)["input_ids"]
        sequences = [ids + target + [tok.eos_token_id] for ids, target in zip(prompt_ids, targets)]
        padded = tok.pad({"input_ids": sequences}, padding=True, return_tensors="pt")
        batch = {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"], **extras}
        return batch, [len(ids) for ids in prompt_ids]

    def _plan(self, row: Row):
        try:
            return self.views.plan(*row.image.size)
        except PageTooThin as exc:
            raise BadExample(row.index, exc.msgid, row.path, **exc.params) from exc

    def tokens_before_target(self, width: int, height: int, prompt: str | None = None) -> int | None:
        if self.views is None:
            return None  # the processor's own settings decide; known only by calling it
        try:
            tiles = self.views.plan(width, height).tiles
        except ValueError:
            return None  # a page the builder refuses; the dataset probe names it otherwise
        return len(self._expanded_prompt_ids(self.prompt if prompt is None else prompt, tiles))

    def _expanded_prompt_ids(self, prompt: str, tiles: int) -> list[int]:
        """The prompt's ids with its image token written as the page's slots, as the processor
        tokenises it; cached, since a dataset has few prompts and few tile counts."""
        key = (prompt, tiles)
        ids = self._prompt_ids.get(key)
        if ids is None:
            if len(self._prompt_ids) >= PROMPT_CACHE_SIZE:
                self._prompt_ids.clear()
            text = prompt.replace(self.image_token, self.image_token * self.expected_slots(tiles), 1)
            ids = self._prompt_ids[key] = self.tokenizer(text)["input_ids"]
        return list(ids)

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
        return {
            **super().describe(),
            "global_size": self.global_size,
            "tile_size": self.tile_size,
            "global_slots": self.slots_per_view(self.global_size),
            "slots_per_tile": self.slots_per_view(self.tile_size),
            "crop_to_patches": effective_setting(self.processor, "crop_to_patches"),
            "pixels_made_by": "builder" if self.fast else "processor",
            "fallback_reason": self.fallback_reason,
        }

    def validate(self, batch: Mapping[str, Any]) -> list[Problem]:
        problems = super().validate(batch)
        ids, tiles = batch.get("input_ids"), batch.get("num_local_patches")
        if ids is None:
            return problems
        if tiles is None:
            return problems + [problem("batch.layout", "no-tile-counts")]
        tiles = [int(t) for t in tiles]
        if len(tiles) != ids.shape[0]:
            problems.append(problem("batch.layout", "tile-counts", count=len(tiles), samples=ids.shape[0]))
            return problems
        slots = (ids == self.image_token_id).sum(dim=-1).tolist()
        for i, (have, n) in enumerate(zip(slots, tiles)):
            want = self.expected_slots(n)
            if have != want:
                problems.append(problem("batch.layout", "tile-slots", sample=i, slots=have, tiles=n, want=want,
                                        per_view=self.slots_per_view(self.global_size),
                                        per_tile=self.slots_per_view(self.tile_size)))
        pixels, local = batch.get("pixel_values"), batch.get("pixel_values_local")
        if pixels is not None and pixels.shape[0] != len(tiles):
            problems.append(problem("batch.layout", "global-views", views=pixels.shape[0], samples=len(tiles)))
        have_local = 0 if local is None else local.shape[0]
        if have_local != sum(tiles):
            problems.append(problem("batch.layout", "local-tiles", tiles=have_local, counted=sum(tiles)))
        return problems


def _probe_page(tile: int):
    """A page two tiles wide and one tall: with the usual grid its tiles are its own pixels, so
    every uint8 value of each channel goes through the pixel table; its global view is padded."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:tile, 0:2 * tile]
    channels = [(x * 7 + y * 13) % 256, (x * 11 + y * 5 + 101) % 256, (x + y * 3 + 37) % 256]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8), "RGB")


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
